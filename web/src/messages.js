// Every user-facing string of the pages (the candidate's, the catalog, the proctor's), in one catalog (English first). A string with parameters is a
// function of them. Times are shown in the candidate's locale and time zone (`localTime`), with the server's own
// (UTC, as the server records it) in a tooltip (`serverTime`).

export const M = {
  // pages
  loadingExam: 'Loading your exam…',
  noSuchSessionTitle: 'No such session',
  noSuchSession: 'There is no exam session at this address for you. The link may be mistyped, or it belongs to someone else.',
  goToExams: 'Go to your exams',
  somethingWrong: 'Something went wrong',
  incidentForSupport: 'Incident id for support: ',
  tryAgain: 'Try again',
  signInTitle: 'You are not signed in',
  signInHelp: 'Open the sign-in link you were given. If it has expired, ask your proctor or organiser for a new one.',
  examNotLoaded: 'Your exam could not be loaded',
  // provisioning
  preparing: (title) => `Preparing ${title}`,
  yourExam: 'your exam',
  preparingHelp: 'Your exam environment is being set up. Your exam time has not started yet.',
  steps: 'Steps',
  elapsed: (s) => `Elapsed: ${s} s`,
  step: (n, total, message) => `Step ${n} of ${total}: ${message}`,
  waitingToStart: 'Waiting to start…',
  starting: 'Starting…',
  // the exam
  exam: 'Exam',
  loadingTasks: 'Loading tasks…',
  tasks: 'Tasks',
  submitExam: 'Submit exam',
  terminalHeading: 'Terminal',
  terminalHint:
    'Terminal: Tab moves into the terminal; press Ctrl+Shift+F6 or click a task to leave it. Ctrl+Shift+C copies the selection, Ctrl+Shift+V pastes.',
  views: 'Views',
  desktop: 'Desktop',
  terminal: 'Terminal',
  terminals: 'Terminals',
  terminalTab: (name) => (name === 'main' ? 'Terminal 1' : `Terminal ${Number(name.slice(1)) + 1}`),
  newTerminal: 'New terminal',
  newTerminalLimit: (n) => `New terminal (at most ${n} open)`,
  closeTerminal: (label) => `Close ${label}`,
  terminalOpenFailed: (why) => `A new terminal could not be opened: ${why}`,
  terminalReplaced: 'This terminal was opened in another window or tab, so it is closed here.',
  useTerminalHere: 'Use the terminal here',
  terminalRefused: 'The terminal refused this connection.',
  examEnded: 'The exam has ended.',
  pasteRefused: 'The browser did not allow reading the clipboard; use the context menu or Ctrl+V instead.',
  desktopPastePlaceholder: 'Text to paste into the desktop',
  desktopPasteSend: 'Send to the desktop clipboard',
  desktopPasteDone: ' On the desktop clipboard: paste it there with a middle-click, or Shift+Insert in a terminal.',
  desktopNotConnected: ' The desktop is not connected yet.',
  desktopLoadFailed: (why) => `The desktop could not be loaded: ${why}. Reload the page.`,
  yourPorts: 'Your web ports',
  openPort: (p) => `Open port ${p}`,
  openPortHint: ' (a new tab; start your server on this port first)',
  tasksNotLoaded: (why) => `The tasks could not be loaded: ${why}`,
  noTasks: 'This exam has no written tasks.',
  taskHeading: (n, title) => `Task ${n}: ${title}`,
  points: (n) => `${n} point${n === 1 ? '' : 's'}`,
  previousTask: '← Previous task',
  nextTask: 'Next task →',
  flag: 'Flag for review',
  flagged: 'Flagged for review',
  taskState: { flagged: 'flagged', visited: 'visited', untouched: 'not opened yet' },
  legend: 'Legend: ⚑ flagged, ✓ visited, ○ not opened yet',
  copy: 'Copy',
  copyCode: 'Copy this code',
  clickToCopy: 'Click to copy',
  copied: 'Copied to the clipboard.',
  copyFailed: 'Could not copy; select the text and press Ctrl+C.',
  notepad: 'Notepad',
  notepadHelp: 'Your notes are kept on the server for this exam (not in your environment); your proctor can read them.',
  notepadSaving: 'Saving…',
  notepadSaved: 'Saved',
  notepadNotSaved: (why) => `Not saved: ${why}`,
  notepadTooLong: (kib) => `The notepad holds at most ${kib} KiB.`,
  resources: 'Resources',
  resourcesHelp: 'Documentation you may use during this exam (opens in a new tab).',
  opensNewTab: ' (opens in a new tab)',
  // submit
  submitTitle: 'Submit your exam?',
  submitHelp: 'Your work is graded as it stands now, and the terminal closes. You cannot change anything afterwards.',
  keepWorking: 'Keep working',
  submitNow: 'Submit now',
  // time
  timeBeforeStart: (d) => `Time: ${d} (starts when the terminal opens)`,
  timeLeft: (d) => `Time left: ${d}`,
  minutesLeft: (n) => (n === 1 ? '1 minute left.' : `${n} minutes left.`),
  secondsLeft: (n) => `${n} seconds left.`,
  endsAt: (local, zone, server) => `Ends at ${local} (${zone}); server time ${server}`,
  // the end
  ending: 'Closing your environment…',
  closed: 'Your environment is closed.',
  examEndedTitle: 'Exam ended',
  yourExamEnded: 'Your exam has ended',
  result: 'Result',
  grading: 'Grading…',
  backToExams: 'Back to your exams',
  notGraded: 'This exam was not graded.',
  score: 'Score: ',
  passed: 'Passed: ',
  notPassed: 'Not passed: ',
  scoreIs: (s, max) => `Your score is ${s} out of ${max}.`,
  endReasons: {
    submitted: 'You submitted your exam.',
    expired: 'Your time ran out, and the exam was submitted as it stood.',
    terminated_by_proctor: 'A proctor ended your exam.',
    not_started: 'The exam was not started in time, so it was closed.',
  },
  // failures
  failureTitles: {
    provisioning_failed: 'Your exam could not start',
    provisioning_timeout: 'Your exam could not start in time',
    backend_unavailable: 'The exam service is unavailable',
    environment_lost: 'Your exam environment was lost',
    internal: 'Something went wrong on our side',
  },
  couldNotContinue: 'Your exam could not continue',
  examCouldNotContinue: 'Exam could not continue',
  sessionFailed: 'The session failed.',
  sessionReference: 'Session reference: ',
  // preferences
  settings: 'Display settings',
  themeDark: 'Dark theme',
  themeLight: 'Light theme',
  switchTheme: (to) => `Switch to the ${to} theme`,
  textSmaller: 'Smaller text',
  textLarger: 'Larger text',
  textSize: (pct) => `Text size ${pct}%`,
  screenReader: 'Screen-reader mode for the terminal',
};

/** The catalog page. */
export const C = {
  serverUnreachable: 'The exam server could not be reached',
  yourExams: 'Your exams',
  loading: 'Loading…',
  listNotLoaded: 'The exam list could not be loaded',
  inProgressLabel: 'Your exam in progress',
  inProgress: (title) => `You have an exam in progress: ${title}.`,
  resume: 'Resume your exam',
  duration: (d) => `Duration: ${d}`,
  unavailable: 'This exam cannot be started on this server right now.',
  notAvailable: 'Not available',
  startLabel: (title) => `Start ${title}`,
  start: 'Start',
  noExams: 'There are no exams yet.',
  skip: 'Skip to content',
  signOut: 'Sign out',
};

/** The proctor's page. */
export const P = {
  proctorsOnlyTitle: 'Proctors only',
  proctorsOnly: 'This page is for proctors',
  proctorsOnlyHelp: 'You are signed in as a candidate, so there is nothing for you here.',
  proctor: 'Proctor',
  loadingSessions: 'Loading sessions…',
  selectedSession: 'Selected session',
  allSessions: 'All sessions',
  columns: ['Candidate', 'Exam', 'State', 'Remaining', 'Last event'],
  noSessions: 'There are no sessions yet.',
  summary: (n, live, at) => `${n} session${n === 1 ? '' : 's'}, ${live} live. Updated ${at}.`,
  notStarted: (d) => `${d} (not started)`,
  rowLabel: (user, exam, state) => `${user}, ${exam}, ${state}: show details`,
  eventTrail: 'Event trail',
  terminateTitle: 'Terminate this session',
  reasonRequired: 'Reason (required)',
  gradeThisEnd: 'Grade this end',
  terminate: 'Terminate',
  terminateConfirm: 'Terminate this session?',
  cancel: 'Cancel',
  terminateNow: 'Terminate now',
  session: 'Session ',
  examVersion: ' · exam version ',
  notRecorded: 'not recorded',
  state: (state, reason) => `State: ${state}${reason ? ` (${reason})` : ''}`,
  noEvents: 'No events yet.',
  giveReason: 'Give a reason: the candidate and the audit trail see it.',
  confirmText: (user, grade, reason) =>
    `${user || 'The candidate'}'s exam ends now, ${grade ? 'and their work is graded as it stands' : 'without grading'}. Reason: “${reason}”.`,
  beingTerminated: 'The session is being terminated.',
  by: (actor) => ` (by ${actor})`,
  workspace: "The candidate's workspace",
  loading: 'Loading…',
  flagged: 'Flagged for review: ',
  visited: 'Tasks opened: ',
  none: 'none',
  notepad: 'Notepad',
  emptyNotepad: 'The notepad is empty.',
};

/** The connection banner. */
export const B = {
  lost: 'The connection to the exam server is lost. ',
  gaveUp: (n) =>
    `We tried ${n} times and could not reconnect. Check your network connection, then reload this page. ` +
    'Your work in the exam environment is kept while your exam time runs. If this keeps happening, tell your proctor. ',
  reload: 'Reload the page',
  retrying: (n) => `Connection lost, reconnecting (attempt ${n})`,
};

/** The desktop. */
export const D = {
  starting: 'Starting your desktop…',
  couldNotOpen: (why) => `The desktop could not be opened: ${why}`,
  ended: 'The exam has ended; the desktop is closed.',
  unreachable: 'The desktop could not be reached. Reload the page to try again; if it keeps happening, tell your proctor.',
  retrying: (n, max) => `The desktop connection was lost; reconnecting (attempt ${n} of ${max})…`,
};

/** A time in the candidate's locale and time zone. */
export function localTime(date) {
  return date.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

/** The candidate's time zone name, for tooltips. */
export function localZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'local time';
  } catch {
    return 'local time';
  }
}

/** A time as the server records it (UTC, ISO 8601 to the second). */
export function serverTime(date) {
  return `${date.toISOString().replace(/\.\d{3}Z$/, 'Z')}`;
}
