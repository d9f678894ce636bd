//! Grading a machine by booting it again, as certification exams do: the candidate's session is over, so every
//! process of theirs is killed (never frozen and asked), and the machine boots from its disk (the pristine base plus
//! the candidate's writable layer) in fresh namespaces, with systemd starting what the candidate enabled. Checks then
//! run against it with trusted tools, as in any environment. This also checks that the work survives a reboot.

use std::io;
use std::time::Duration;

use nix::sys::wait::WaitStatus;

use super::create::{self, Host, Steps};
use super::serve::Shim;
use crate::sandbox::state;

impl Shim {
    /// Kills everything of the machine and boots it again from its writable layer. Idempotent: a machine already
    /// booted for grading is left as it is.
    pub(crate) fn boot_again_for_grading(&mut self) -> io::Result<()> {
        if self.graded_boot {
            return Ok(());
        }
        let stage = self.stage.as_ref().ok_or_else(|| io::Error::other("no writable layer kept for this machine"))?;
        let disk = crate::sandbox::sys::clone_mount_at(std::os::fd::AsRawFd::as_raw_fd(stage), c"", false)
            .map_err(|e| io::Error::other(format!("the machine's disk: {e}")))?;
        self.graded_boot = true;
        let mut steps = Steps::new();
        // No shell of the candidate's comes back, in the old machine or the new one.
        for t in &mut self.terminals {
            t.respawn_at = None;
        }
        self.stop_machine()?;
        steps.mark("stop");
        let host = Host {
            slot_base: self.state.uid.as_ref().map_or(0, |s| s.base),
            cg: &self.cg,
            env_group: &self.env_group,
            hostname: &self.hostname,
        };
        let mut init = None;
        let machine =
            create::start_init(&self.cfg, &host, self.state.created_unix_ms, Some(disk), &mut init, &mut steps);
        let machine = match machine {
            Ok(m) => m,
            Err(e) => {
                if let Some(pid) = init {
                    // SAFETY: our own child, not yet handed to anyone.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    let _ = create::reap_until(pid);
                }
                return Err(e);
            }
        };
        self.state.init_pid = machine.pid;
        // The new init has a network namespace of its own: dial into that one from now on.
        self.netns = super::dial::NetNs::open(machine.pid).ok();
        self.set_init(machine.sock, machine.build_mnt, machine.views);
        self.stage = Some(machine.stage);
        state::write_json(&self.dir.join(state::STATE), &self.state)?;
        if let Err(e) = create::boot_machine(self, false, &mut steps) {
            // A machine whose PID 1 died while booting (the candidate's library preloaded into it, a broken
            // libsystemd) cannot be asked anything: say so, rather than how a later step failed.
            std::thread::sleep(Duration::from_millis(50));
            let status = create::reap_exited(self.state.init_pid);
            if status.is_some() {
                // Reaped here: the shim's signal handling must not report it again as a loss.
                self.mark_init_stopped();
            }
            return Err(match status {
                Some(WaitStatus::Exited(_, code)) => {
                    io::Error::other(format!("the machine's PID 1 exited with status {code} while booting ({e})"))
                }
                Some(WaitStatus::Signaled(_, sig, _)) => {
                    io::Error::other(format!("the machine's PID 1 was killed by {sig} while booting ({e})"))
                }
                _ => e,
            });
        }
        eprintln!("examroom shim: booted again for grading{}", steps.line);
        Ok(())
    }

    /// Kills every process of the machine (its PID 1 with them) and reaps what is ours; closes the way in.
    fn stop_machine(&mut self) -> io::Result<()> {
        self.entry = None;
        self.ptmx = None;
        self.reap_entered(Duration::from_secs(2));
        self.cg
            .kill_all(&self.env_group, Duration::from_secs(10))
            .map_err(|e| io::Error::other(format!("stop the machine: {e}")))?;
        let _ = create::reap_until(self.state.init_pid);
        self.mark_init_stopped();
        // The old terminals' programs are gone; the console comes back with the new machine.
        self.terminals.retain(|t| !t.console);
        Ok(())
    }
}
