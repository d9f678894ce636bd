//! Admission by memory: a session is admitted only while the memory limits of the live sessions, plus the new
//! session's, stay within the memory budget (a share of the host's memory, set by `serve`).
//!
//! Why memory: the kernel charges what an environment holds (its processes, its tmpfs, and its open files: each
//! `struct file` is charged to the environment's memory cgroup) to its memory limit. When the host can hold the sum of
//! the limits, no set of environments can exhaust the host's memory, and with `fs.file-max` and `kernel.pid_max`
//! sized for that sum (`examroom serve` does it at start) they cannot exhaust the open-file or pid tables either.
//!
//! A session holds its reservation from `create` until it reaches a final state (`terminated` or `failed`):
//! `created`, `provisioning`, `ready`, `active` and `terminating` all hold or are about to hold an environment.
//! A pooled environment (see [`crate::pool`]) holds one from the start of its making until it is claimed (then the
//! reservation moves to the claiming session, [`MemoryAdmission::transfer`]) or retired.
//! Reservations are exact per holder, so a release is idempotent, and a check and its reservation happen under one
//! lock, so concurrent creates never admit more than fits.

use std::collections::HashMap;
use std::sync::Mutex;

use examroom_core::{EnvironmentId, ExamSessionId};

/// What holds a reservation: a session, or a pooled environment no session has claimed yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Holder {
    /// A live session.
    Session(ExamSessionId),
    /// A pooled environment (filling or ready).
    Pooled(EnvironmentId),
}

impl From<ExamSessionId> for Holder {
    fn from(id: ExamSessionId) -> Self {
        Holder::Session(id)
    }
}

/// Why a session was not admitted: the numbers, for logs and proctors (never for the candidate's answer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryRefusal {
    /// The memory limits of the sessions already admitted, in bytes.
    pub admitted: u64,
    /// The new session's memory limit, in bytes.
    pub asked: u64,
    /// The budget, in bytes.
    pub budget: u64,
}

impl std::fmt::Display for MemoryRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "live sessions hold {} MiB of memory limits; another {} MiB would exceed the budget of {} MiB",
            self.admitted >> 20,
            self.asked >> 20,
            self.budget >> 20
        )
    }
}

/// Whether a session asking for `asked` bytes fits next to `admitted` bytes within `budget`.
pub fn fits(admitted: u64, asked: u64, budget: u64) -> bool {
    admitted.checked_add(asked).is_some_and(|sum| sum <= budget)
}

#[derive(Default)]
struct Held {
    by_holder: HashMap<Holder, u64>,
    sum: u64,
    pooled: usize,
}

impl Held {
    fn insert(&mut self, holder: Holder, bytes: u64) {
        match self.by_holder.insert(holder, bytes) {
            Some(old) => self.sum -= old,
            None if matches!(holder, Holder::Pooled(_)) => self.pooled += 1,
            None => {}
        }
        self.sum += bytes;
    }

    fn remove(&mut self, holder: &Holder) -> Option<u64> {
        let bytes = self.by_holder.remove(holder)?;
        self.sum -= bytes;
        if matches!(holder, Holder::Pooled(_)) {
            self.pooled -= 1;
        }
        Some(bytes)
    }
}

/// The memory reservations of live sessions.
pub struct MemoryAdmission {
    budget: Option<u64>,
    held: Mutex<Held>,
}

impl MemoryAdmission {
    /// Admission within `budget` bytes; `None` admits everything (the reservations are still kept, for the metrics).
    pub fn new(budget: Option<u64>) -> Self {
        MemoryAdmission { budget, held: Mutex::new(Held::default()) }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The budget in bytes, if there is one.
    pub fn budget(&self) -> Option<u64> {
        self.budget
    }

    /// The memory limits of the sessions and pooled environments admitted now, in bytes.
    pub fn admitted(&self) -> u64 {
        self.held().sum
    }

    /// Pooled environments holding a reservation now.
    pub fn pooled(&self) -> usize {
        self.held().pooled
    }

    /// Reserves `bytes` for `holder` if they fit; the check and the reservation are one step.
    pub fn reserve(&self, holder: impl Into<Holder>, bytes: u64) -> Result<(), MemoryRefusal> {
        self.reserve_leaving(holder, bytes, 0)
    }

    /// Reserves `bytes` for `holder` if they fit with `headroom` bytes still free afterwards (pools fill only while
    /// a candidate's environment would still fit).
    pub fn reserve_leaving(&self, holder: impl Into<Holder>, bytes: u64, headroom: u64) -> Result<(), MemoryRefusal> {
        let mut held = self.held();
        if let Some(budget) = self.budget {
            if !fits(held.sum, bytes.saturating_add(headroom), budget) {
                return Err(MemoryRefusal { admitted: held.sum, asked: bytes, budget });
            }
        }
        held.insert(holder.into(), bytes);
        Ok(())
    }

    /// Reserves `bytes` for `holder` if they fit and fewer than `slots` holders (sessions, in-flight creates and pooled
    /// environments) hold a reservation, after releasing `victim`'s, if any; the checks and the reservation are one
    /// step, so that racing creates never pass a slot count together (`Err(None)`: no slot; `Err(Some(_))`: no
    /// memory). The victim's reservation is released even when the new one is refused.
    pub fn reserve_in_slot(
        &self,
        victim: Option<Holder>,
        holder: impl Into<Holder>,
        bytes: u64,
        slots: usize,
    ) -> Result<(), Option<MemoryRefusal>> {
        let mut held = self.held();
        if let Some(v) = victim {
            held.remove(&v);
        }
        let holder = holder.into();
        if !held.by_holder.contains_key(&holder) && held.by_holder.len() >= slots {
            return Err(None);
        }
        if let Some(budget) = self.budget {
            if !fits(held.sum, bytes, budget) {
                return Err(Some(MemoryRefusal { admitted: held.sum, asked: bytes, budget }));
            }
        }
        held.insert(holder, bytes);
        Ok(())
    }

    /// Releases `victim`'s reservation and then reserves `bytes` for `holder` if they fit, in one step: the memory a
    /// retired pooled environment frees goes to the candidate who needed it, not to whoever asks next. The victim's
    /// reservation is released even when the new one does not fit.
    pub fn reserve_releasing(
        &self,
        victim: Holder,
        holder: impl Into<Holder>,
        bytes: u64,
    ) -> Result<(), MemoryRefusal> {
        let mut held = self.held();
        held.remove(&victim);
        if let Some(budget) = self.budget {
            if !fits(held.sum, bytes, budget) {
                return Err(MemoryRefusal { admitted: held.sum, asked: bytes, budget });
            }
        }
        held.insert(holder.into(), bytes);
        Ok(())
    }

    /// Moves `from`'s reservation to `to` (a claimed pooled environment's memory becomes its session's), without a
    /// check: the memory is the same. False (and nothing changes) if `from` held none.
    pub fn transfer(&self, from: Holder, to: impl Into<Holder>) -> bool {
        let mut held = self.held();
        match held.remove(&from) {
            Some(bytes) => {
                held.insert(to.into(), bytes);
                true
            }
            None => false,
        }
    }

    /// Records a reservation without checking the budget (one stored by an earlier process).
    pub fn restore(&self, holder: impl Into<Holder>, bytes: u64) {
        self.held().insert(holder.into(), bytes);
    }

    /// Releases a reservation; false if `holder` held none.
    pub fn release(&self, holder: impl Into<Holder>) -> bool {
        self.held().remove(&holder.into()).is_some()
    }
}

/// A reservation that is released when dropped unless [`Reservation::keep`] was called: a create that fails (or is
/// cancelled) after admission gives the memory back.
pub struct Reservation<'a> {
    admission: &'a MemoryAdmission,
    id: ExamSessionId,
    kept: bool,
}

impl<'a> Reservation<'a> {
    /// Reserves `bytes` for `id` (see [`MemoryAdmission::reserve`]).
    pub fn new(admission: &'a MemoryAdmission, id: ExamSessionId, bytes: u64) -> Result<Self, MemoryRefusal> {
        admission.reserve(id, bytes)?;
        Ok(Reservation { admission, id, kept: false })
    }

    /// Reserves `bytes` for `id` after releasing `victim` (see [`MemoryAdmission::reserve_releasing`]).
    pub fn releasing(
        admission: &'a MemoryAdmission,
        victim: Holder,
        id: ExamSessionId,
        bytes: u64,
    ) -> Result<Self, MemoryRefusal> {
        admission.reserve_releasing(victim, id, bytes)?;
        Ok(Reservation { admission, id, kept: false })
    }

    /// Reserves `bytes` for `id` in one of `slots` (see [`MemoryAdmission::reserve_in_slot`]).
    pub fn in_slot(
        admission: &'a MemoryAdmission,
        victim: Option<Holder>,
        id: ExamSessionId,
        bytes: u64,
        slots: usize,
    ) -> Result<Self, Option<MemoryRefusal>> {
        admission.reserve_in_slot(victim, id, bytes, slots)?;
        Ok(Reservation { admission, id, kept: false })
    }

    /// The session is stored: the reservation now lasts until the session reaches a final state.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.kept {
            self.admission.release(self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn a_slot_is_checked_and_taken_in_one_step() {
        let a = MemoryAdmission::new(None);
        let (s1, s2, s3) = (ExamSessionId::new_v4(), ExamSessionId::new_v4(), ExamSessionId::new_v4());
        let pooled = examroom_core::EnvironmentId::new_v4();
        a.reserve(Holder::Pooled(pooled), MIB).unwrap();
        a.reserve_in_slot(None, s1, MIB, 2).unwrap();
        // Two holders in two slots: the next is refused for want of a slot, not of memory.
        assert_eq!(a.reserve_in_slot(None, s2, MIB, 2), Err(None));
        // Taking the pooled environment out makes room, in the same step.
        a.reserve_in_slot(Some(Holder::Pooled(pooled)), s2, MIB, 2).unwrap();
        assert_eq!(a.pooled(), 0);
        // A holder that already has a reservation keeps its slot.
        a.reserve_in_slot(None, s1, 2 * MIB, 2).unwrap();
        assert_eq!(a.reserve_in_slot(None, s3, MIB, 2), Err(None));
        // With a budget, memory is the other reason.
        let b = MemoryAdmission::new(Some(MIB));
        assert!(matches!(b.reserve_in_slot(None, s1, 2 * MIB, 10), Err(Some(_))));
    }

    #[test]
    fn fits_is_inclusive_and_never_overflows() {
        assert!(fits(0, 512 * MIB, 512 * MIB));
        assert!(fits(512 * MIB, 512 * MIB, 1024 * MIB));
        assert!(!fits(512 * MIB, 512 * MIB + 1, 1024 * MIB));
        assert!(!fits(u64::MAX, 1, u64::MAX));
        assert!(!fits(0, 1, 0));
    }

    #[test]
    fn two_fit_the_third_is_refused_and_an_end_makes_room() {
        let a = MemoryAdmission::new(Some(1228 * MIB));
        let (s1, s2, s3) = (ExamSessionId::new_v4(), ExamSessionId::new_v4(), ExamSessionId::new_v4());
        a.reserve(s1, 512 * MIB).unwrap();
        a.reserve(s2, 512 * MIB).unwrap();
        let refusal = a.reserve(s3, 512 * MIB).unwrap_err();
        assert_eq!(refusal, MemoryRefusal { admitted: 1024 * MIB, asked: 512 * MIB, budget: 1228 * MIB });
        assert_eq!(
            refusal.to_string(),
            "live sessions hold 1024 MiB of memory limits; another 512 MiB would exceed the budget of 1228 MiB"
        );
        assert_eq!(a.admitted(), 1024 * MIB);
        assert!(a.release(s1));
        assert!(!a.release(s1), "a second release changes nothing");
        assert_eq!(a.admitted(), 512 * MIB);
        a.reserve(s3, 512 * MIB).unwrap();
        assert_eq!(a.admitted(), 1024 * MIB);
    }

    #[test]
    fn a_session_larger_than_the_budget_is_refused_even_on_an_empty_host() {
        let a = MemoryAdmission::new(Some(256 * MIB));
        assert!(a.reserve(ExamSessionId::new_v4(), 512 * MIB).is_err());
        assert_eq!(a.admitted(), 0);
    }

    #[test]
    fn without_a_budget_everything_is_admitted_and_counted() {
        let a = MemoryAdmission::new(None);
        for _ in 0..10 {
            a.reserve(ExamSessionId::new_v4(), 64 << 30).unwrap();
        }
        assert_eq!(a.admitted(), 640 << 30);
        assert_eq!(a.budget(), None);
    }

    #[test]
    fn restored_sessions_count_even_above_the_budget() {
        let a = MemoryAdmission::new(Some(1024 * MIB));
        let ids: Vec<_> = (0..3).map(|_| ExamSessionId::new_v4()).collect();
        for id in &ids {
            a.restore(*id, 512 * MIB);
        }
        a.restore(ids[0], 512 * MIB);
        assert_eq!(a.admitted(), 1536 * MIB, "restoring the same session twice counts it once");
        assert!(a.reserve(ExamSessionId::new_v4(), 32 * MIB).is_err());
        a.release(ids[0]);
        a.release(ids[1]);
        a.reserve(ExamSessionId::new_v4(), 512 * MIB).unwrap();
    }

    #[test]
    fn a_dropped_reservation_gives_the_memory_back_a_kept_one_does_not() {
        let a = MemoryAdmission::new(Some(1024 * MIB));
        {
            let _r = Reservation::new(&a, ExamSessionId::new_v4(), 512 * MIB).unwrap();
            assert_eq!(a.admitted(), 512 * MIB);
        }
        assert_eq!(a.admitted(), 0);
        let id = ExamSessionId::new_v4();
        Reservation::new(&a, id, 512 * MIB).unwrap().keep();
        assert_eq!(a.admitted(), 512 * MIB);
        assert!(a.release(id));
    }

    #[test]
    fn concurrent_reservations_never_exceed_the_budget() {
        let a = std::sync::Arc::new(MemoryAdmission::new(Some(10 * 512 * MIB + 100)));
        let admitted: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..32)
                .map(|_| {
                    let a = a.clone();
                    s.spawn(move || a.reserve(ExamSessionId::new_v4(), 512 * MIB).is_ok())
                })
                .collect();
            handles.into_iter().map(|h| usize::from(h.join().unwrap())).sum()
        });
        assert_eq!(admitted, 10);
        assert_eq!(a.admitted(), 10 * 512 * MIB);
    }

    #[test]
    fn pooled_environments_hold_memory_until_claimed_or_released() {
        let a = MemoryAdmission::new(Some(1024 * MIB));
        let (e1, e2) = (EnvironmentId::new_v4(), EnvironmentId::new_v4());
        a.reserve(Holder::Pooled(e1), 512 * MIB).unwrap();
        // A fill leaves room for one more candidate: with 512 MiB of headroom the second does not fit.
        assert!(a.reserve_leaving(Holder::Pooled(e2), 256 * MIB, 512 * MIB).is_err());
        a.reserve_leaving(Holder::Pooled(e2), 256 * MIB, 256 * MIB).unwrap();
        assert_eq!((a.admitted(), a.pooled()), (768 * MIB, 2));
        // A claim moves the memory to the session: nothing is checked, nothing changes in the sum.
        let s1 = ExamSessionId::new_v4();
        assert!(a.transfer(Holder::Pooled(e1), s1));
        assert!(!a.transfer(Holder::Pooled(e1), ExamSessionId::new_v4()), "claimed once");
        assert_eq!((a.admitted(), a.pooled()), (768 * MIB, 1));
        // A candidate who does not fit takes a pooled environment's memory in one step.
        let s2 = ExamSessionId::new_v4();
        assert!(a.reserve(s2, 512 * MIB).is_err());
        a.reserve_releasing(Holder::Pooled(e2), s2, 512 * MIB).unwrap();
        assert_eq!((a.admitted(), a.pooled()), (1024 * MIB, 0));
        // The victim is released even when the candidate still does not fit.
        let e3 = EnvironmentId::new_v4();
        a.restore(Holder::Pooled(e3), 32 * MIB);
        assert!(a.reserve_releasing(Holder::Pooled(e3), ExamSessionId::new_v4(), 64 * MIB).is_err());
        assert_eq!((a.admitted(), a.pooled()), (1024 * MIB, 0));
        assert!(a.release(s1) && a.release(s2));
        assert_eq!(a.admitted(), 0);
    }
}
