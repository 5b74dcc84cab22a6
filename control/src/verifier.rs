//! Password verification off the control thread. PBKDF2 is slow on purpose
//! (~0.3 s of CPU at the default 600 000 iterations); run inline it would
//! stall every handshake, tunnel and timer the control thread serves. A few
//! verifier threads take checks from a bounded queue and hand verdicts
//! back over a channel, waking the control loop's `mio::Poll`.
//!
//! A check names the connection that asked ([`CheckId`]); the connection
//! holds a [`PendingCheck`] until the verdict comes, and a verdict that
//! matches no pending check (the connection closed or moved on) is
//! dropped by the caller. Dropping a `PendingCheck` marks its check
//! abandoned, so a verifier skips it instead of burning a core on a
//! password nobody waits for.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::Waker;
use zeroize::Zeroizing;

use crate::passwd::PasswordFile;

/// How long shutdown waits for verifiers still inside a PBKDF2 run; one run
/// cannot be interrupted, and a password file with an absurd iteration
/// count must not hold the gateway's exit hostage.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Verifier threads when the configuration says 0: half the cores, so the
/// data plane keeps the rest under a login storm, and at most 4, which
/// clears hundreds of default-cost logins a minute.
pub fn auto_threads(cores: usize) -> usize {
    (cores / 2).clamp(1, 4)
}

/// Verifier threads for `[auth] verify_threads` (0: [`auto_threads`]).
pub fn threads_for(configured: usize) -> usize {
    match configured {
        0 => auto_threads(std::thread::available_parallelism().map_or(1, |n| n.get())),
        n => n,
    }
}

/// What a verifier asks of the account store.
pub trait Credentials: Send + Sync + 'static {
    /// `Some(group)` when `password` opens `user`'s account. Must cost the
    /// same for unknown users as for known ones, so that timing does not
    /// tell which user names exist.
    fn verify(&self, user: &str, password: &str) -> Option<Option<String>>;
}

impl Credentials for PasswordFile {
    fn verify(&self, user: &str, password: &str) -> Option<Option<String>> {
        self.check(user, password).map(|e| e.group.clone())
    }
}

pub use crate::core::CheckId;

/// What a verifier decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accepted {
        group: Option<String>,
    },
    Rejected,
    /// The connection was gone (or the gateway stopping) before a verifier
    /// reached the check; no hash was computed.
    Abandoned,
}

/// A verdict on its way back to the control thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    pub id: CheckId,
    pub verdict: Verdict,
}

/// A check in the queue. The password is wiped when the check is dropped,
/// on whichever thread that happens.
struct QueuedCheck {
    id: CheckId,
    user: String,
    password: Zeroizing<String>,
    abandoned: Arc<AtomicBool>,
}

/// The connection's side of a check in flight: the user it is for, and the
/// way to abandon it. Dropping it (the connection closed) abandons it.
#[derive(Debug)]
pub struct PendingCheck {
    pub id: CheckId,
    pub user: String,
    abandoned: Arc<AtomicBool>,
}

impl PendingCheck {
    /// Takes the pending check out of `slot` if `id` answers it. A verdict
    /// for any other check (an earlier one of the same connection, or one
    /// whose connection was replaced) leaves the slot as it was.
    pub fn claim(slot: &mut Option<PendingCheck>, id: CheckId) -> Option<PendingCheck> {
        if slot.as_ref().is_some_and(|p| p.id == id) {
            slot.take()
        } else {
            None
        }
    }
}

impl Drop for PendingCheck {
    fn drop(&mut self) {
        self.abandoned.store(true, Ordering::Relaxed);
    }
}

/// Why a check was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitError {
    /// Every verifier is busy and the queue is full.
    Full,
    /// The verifiers are gone (shut down, or every one of them died).
    Stopped,
}

/// The verifier threads and both ends of their channels.
#[derive(Debug)]
pub struct Verifiers {
    /// `None` once shut down: dropping the sender is what tells idle
    /// verifiers to exit.
    queue: Option<SyncSender<QueuedCheck>>,
    results: Receiver<CheckResult>,
    workers: Vec<JoinHandle<()>>,
    /// Set at shutdown: checks still queued are answered unverified, as
    /// no connection will read their verdict.
    stopping: Arc<AtomicBool>,
    /// Checks queued whose result has not been taken yet.
    in_flight: usize,
}

impl Verifiers {
    /// Starts `threads` verifiers (at least one) behind a queue of
    /// `capacity` checks (at least one). `waker` is woken after every
    /// verdict.
    pub fn start(
        credentials: Arc<dyn Credentials>,
        threads: usize,
        capacity: usize,
        waker: Arc<Waker>,
    ) -> std::io::Result<Self> {
        let (queue, requests) = mpsc::sync_channel::<QueuedCheck>(capacity.max(1));
        let (answers, results) = mpsc::channel();
        // std's Receiver has one owner; the verifiers take turns at it.
        let requests = Arc::new(Mutex::new(requests));
        let stopping = Arc::new(AtomicBool::new(false));
        let mut me =
            Self { queue: Some(queue), results, workers: Vec::new(), stopping: stopping.clone(), in_flight: 0 };
        for i in 0..threads.max(1) {
            let (credentials, requests, answers, waker, stopping) =
                (credentials.clone(), requests.clone(), answers.clone(), waker.clone(), stopping.clone());
            let worker = std::thread::Builder::new()
                .name(format!("corridor-verify-{i}"))
                .spawn(move || verify_loop(&*credentials, &requests, &answers, &waker, &stopping));
            match worker {
                Ok(w) => me.workers.push(w),
                Err(e) => {
                    me.shutdown();
                    return Err(e);
                }
            }
        }
        Ok(me)
    }

    /// Queues check `id` of `password` for `user`; the connection keeps the
    /// returned [`PendingCheck`] until the verdict.
    pub fn submit(
        &mut self,
        id: CheckId,
        user: &str,
        password: Zeroizing<String>,
    ) -> Result<PendingCheck, SubmitError> {
        let Some(queue) = &self.queue else { return Err(SubmitError::Stopped) };
        let abandoned = Arc::new(AtomicBool::new(false));
        let check = QueuedCheck { id, user: user.to_string(), password, abandoned: abandoned.clone() };
        match queue.try_send(check) {
            Ok(()) => {
                self.in_flight += 1;
                Ok(PendingCheck { id, user: user.to_string(), abandoned })
            }
            Err(TrySendError::Full(_)) => Err(SubmitError::Full),
            Err(TrySendError::Disconnected(_)) => Err(SubmitError::Stopped),
        }
    }

    /// The next verdict that has come back, if any. Never blocks.
    pub fn try_result(&mut self) -> Option<CheckResult> {
        let r = self.results.try_recv().ok()?;
        self.in_flight = self.in_flight.saturating_sub(1);
        Some(r)
    }

    /// Checks queued or being verified whose verdict has not been taken.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Closes the queue and waits (up to [`SHUTDOWN_GRACE`]) for the
    /// verifiers to exit: idle ones at once, busy ones after their current
    /// check; checks still queued are dropped unverified. A verifier still
    /// hashing after the grace is left to the process's exit.
    pub fn shutdown(&mut self) {
        self.stopping.store(true, Ordering::Relaxed);
        if self.queue.take().is_none() && self.workers.is_empty() {
            return;
        }
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while self.workers.iter().any(|w| !w.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let (done, busy): (Vec<_>, Vec<_>) = self.workers.drain(..).partition(JoinHandle::is_finished);
        for w in done {
            if w.join().is_err() {
                tracing::warn!("a password verifier thread had panicked");
            }
        }
        if !busy.is_empty() {
            tracing::warn!(threads = busy.len(), "password verifiers still hashing at shutdown; not waiting for them");
        }
    }
}

impl Drop for Verifiers {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// One verifier: checks until the queue closes or the control thread is gone.
fn verify_loop(
    credentials: &dyn Credentials,
    requests: &Mutex<Receiver<QueuedCheck>>,
    answers: &Sender<CheckResult>,
    waker: &Waker,
    stopping: &AtomicBool,
) {
    loop {
        // The lock is held only while waiting for a check, never while
        // hashing; the receiver has no state a panic could leave broken.
        let next = requests.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(check) = next else { return };
        let verdict = if check.abandoned.load(Ordering::Relaxed) || stopping.load(Ordering::Relaxed) {
            Verdict::Abandoned
        } else {
            match credentials.verify(&check.user, &check.password) {
                Some(group) => Verdict::Accepted { group },
                None => Verdict::Rejected,
            }
        };
        if answers.send(CheckResult { id: check.id, verdict }).is_err() {
            return;
        }
        // A failed wake is caught by the control thread's next tick.
        let _ = waker.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ConnId;
    use crate::passwd::Entry;
    use mio::{Events, Poll, Token};

    const WAKE: Token = Token(7);

    /// A poll whose waker the verifiers wake.
    fn poll() -> (Poll, Arc<Waker>) {
        let poll = Poll::new().expect("poll");
        let waker = Arc::new(Waker::new(poll.registry(), WAKE).expect("waker"));
        (poll, waker)
    }

    /// Waits for `n` verdicts, each announced by the waker, as the control
    /// loop would. The poll timeout only keeps a broken pool from hanging
    /// the test; nothing is asserted about time.
    fn collect(poll: &mut Poll, v: &mut Verifiers, n: usize) -> Vec<CheckResult> {
        let mut events = Events::with_capacity(8);
        let mut out = Vec::new();
        while out.len() < n {
            poll.poll(&mut events, Some(Duration::from_secs(120))).expect("poll");
            assert!(events.iter().any(|e| e.token() == WAKE), "a verdict wakes the control loop");
            while let Some(r) = v.try_result() {
                out.push(r);
            }
        }
        out
    }

    /// Check `seq` of connection `conn`.
    fn check(conn: usize, seq: u64) -> CheckId {
        CheckId { conn: ConnId(conn), seq }
    }

    fn password(p: &str) -> Zeroizing<String> {
        Zeroizing::new(p.to_string())
    }

    #[test]
    fn verifiers_answer_right_wrong_and_unknown() {
        let mut file = PasswordFile::default();
        file.set(Entry::new("alice", "s3cret", Some("staff"), 1000).expect("entry"));
        file.set(Entry::new("bob", "hunter2", None, 1000).expect("entry"));
        let (mut poll, waker) = poll();
        let mut v = Verifiers::start(Arc::new(file), 2, 8, waker).expect("start");
        let mut pending = Vec::new();
        for (seq, (conn, user, pw)) in
            [(16, "alice", "s3cret"), (17, "alice", "wrong"), (18, "carol", "s3cret"), (19, "bob", "hunter2")]
                .into_iter()
                .enumerate()
        {
            pending.push(v.submit(check(conn, seq as u64), user, password(pw)).expect("queued"));
        }
        assert_eq!(v.in_flight(), 4);
        let mut got = collect(&mut poll, &mut v, 4);
        got.sort_by_key(|r| r.id.conn);
        let verdicts: Vec<(ConnId, Verdict)> = got.into_iter().map(|r| (r.id.conn, r.verdict)).collect();
        assert_eq!(
            verdicts,
            [
                (ConnId(16), Verdict::Accepted { group: Some("staff".into()) }),
                (ConnId(17), Verdict::Rejected),
                (ConnId(18), Verdict::Rejected),
                (ConnId(19), Verdict::Accepted { group: None }),
            ]
        );
        assert_eq!(v.in_flight(), 0);
        drop(pending);
    }

    /// Credentials that hold each check until the test lets it go, and say
    /// which users they were asked about: the pool's state is then set by
    /// the test, not by how fast PBKDF2 runs.
    struct Gate {
        started: Mutex<Sender<String>>,
        release: Mutex<Receiver<()>>,
    }

    impl Credentials for Gate {
        fn verify(&self, user: &str, _password: &str) -> Option<Option<String>> {
            let _ = self.started.lock().unwrap_or_else(PoisonError::into_inner).send(user.to_string());
            let _ = self.release.lock().unwrap_or_else(PoisonError::into_inner).recv();
            None
        }
    }

    fn gate() -> (Arc<Gate>, Receiver<String>, Sender<()>) {
        let (started_tx, started) = mpsc::channel();
        let (release, release_rx) = mpsc::channel();
        (Arc::new(Gate { started: Mutex::new(started_tx), release: Mutex::new(release_rx) }), started, release)
    }

    #[test]
    fn a_full_queue_refuses_at_once_and_recovers() {
        let (gate, started, release) = gate();
        let (mut poll, waker) = poll();
        let mut v = Verifiers::start(gate, 1, 1, waker).expect("start");
        let _a = v.submit(check(16, 0), "a", password("x")).expect("queued");
        assert_eq!(started.recv().expect("the verifier took a"), "a");
        let _b = v.submit(check(17, 0), "b", password("x")).expect("queued behind a");
        assert_eq!(v.submit(check(18, 0), "c", password("x")).err(), Some(SubmitError::Full));
        assert_eq!(v.in_flight(), 2, "the refused check is not in flight");
        release.send(()).expect("release a");
        assert_eq!(started.recv().expect("the verifier took b"), "b");
        release.send(()).expect("release b");
        let got = collect(&mut poll, &mut v, 2);
        assert_eq!(got.iter().map(|r| r.id.conn).collect::<Vec<_>>(), [ConnId(16), ConnId(17)]);
        assert!(v.submit(check(18, 1), "c", password("x")).is_ok(), "room again once the verifier caught up");
        release.send(()).expect("release c");
    }

    #[test]
    fn a_check_whose_connection_closed_is_skipped() {
        let (gate, started, release) = gate();
        let (mut poll, waker) = poll();
        let mut v = Verifiers::start(gate, 1, 4, waker).expect("start");
        let a = v.submit(check(16, 0), "a", password("x")).expect("queued");
        assert_eq!(started.recv().expect("the verifier took a"), "a");
        let b = v.submit(check(17, 0), "b", password("x")).expect("queued");
        // Both connections close: a is already being hashed, b is not.
        drop(a);
        drop(b);
        release.send(()).expect("release a");
        let got = collect(&mut poll, &mut v, 2);
        assert_eq!(got.iter().map(|r| &r.verdict).collect::<Vec<_>>(), [&Verdict::Rejected, &Verdict::Abandoned]);
        assert!(started.try_recv().is_err(), "b was never verified");
    }

    #[test]
    fn a_verdict_for_another_check_is_stale() {
        let (gate, _started, release) = gate();
        let (_poll, waker) = poll();
        // Two checks from one connection: the first (say it timed out
        // client-side and the device asked again) must not answer the second.
        let mut v = Verifiers::start(gate, 1, 4, waker).expect("start");
        let first = v.submit(check(16, 0), "a", password("x")).expect("queued");
        let second = v.submit(check(16, 1), "a", password("y")).expect("queued");
        let (stale, current) = (first.id, second.id);
        assert_ne!(stale, current);
        let mut slot = Some(second);
        assert!(PendingCheck::claim(&mut slot, stale).is_none());
        assert!(slot.is_some(), "the stale verdict left the pending check alone");
        assert!(PendingCheck::claim(&mut slot, check(17, current.seq)).is_none());
        assert_eq!(PendingCheck::claim(&mut slot, current).map(|p| p.user.clone()), Some("a".into()));
        assert!(slot.is_none());
        drop(first);
        drop(release);
        v.shutdown();
        assert!(v.workers.is_empty(), "the verifier let go of its check and exited");
    }

    #[test]
    fn shutdown_stops_idle_verifiers_and_refuses_new_checks() {
        let (_poll, waker) = poll();
        let mut v = Verifiers::start(Arc::new(PasswordFile::default()), 3, 4, waker).expect("start");
        v.shutdown();
        assert!(v.workers.is_empty(), "every verifier joined");
        assert_eq!(v.submit(check(16, 0), "a", password("x")).err(), Some(SubmitError::Stopped));
    }

    #[test]
    fn automatic_thread_count_is_half_the_cores_up_to_four() {
        assert_eq!([1, 2, 3, 4, 8, 9, 64].map(auto_threads), [1, 1, 1, 2, 4, 4, 4]);
    }
}
