//! The admin thread's questions to the control thread and their answers.
//!
//! Questions go through a bounded channel, and a byte down a pipe that the
//! control thread's poll watches wakes it (a pipe, not a `mio::Waker`: the
//! control poll has one already, for the password verifiers, and mio
//! allows one per poll). Answers come back through a second channel of the
//! same bound and the admin poll's own `Waker`. The admin thread keeps at
//! most [`QUEUE`] questions unanswered, so neither side's `try_send` ever
//! finds its channel full and neither ever blocks.

use std::io::{self, Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::sync::Arc;

use mio::unix::pipe;
use mio::Waker;

use super::PeerCred;
use crate::ctl::{Request, Response, ShardView};

/// Questions in flight at once.
pub const QUEUE: usize = 64;

/// What the admin thread asks.
#[derive(Debug)]
pub enum Ask {
    /// The Prometheus page.
    Metrics,
    /// Each shard's health.
    Health,
    /// A ctl request, from `peer`.
    Ctl { request: Request, peer: PeerCred },
}

/// What the control thread answers: owned and ready to write.
#[derive(Debug)]
pub enum Answer {
    Metrics(String),
    Health(Vec<ShardView>),
    Ctl(Response),
}

#[derive(Debug)]
pub struct Question {
    pub id: u64,
    pub ask: Ask,
}

/// The control thread's end.
#[derive(Debug)]
pub struct ControlEnd {
    questions: Receiver<Question>,
    answers: SyncSender<(u64, Answer)>,
    /// Readable when questions may be waiting; registered with the control poll.
    bell: pipe::Receiver,
    admin: Arc<Waker>,
}

impl ControlEnd {
    /// The pipe to register with the control thread's poll.
    pub fn bell(&mut self) -> &mut pipe::Receiver {
        &mut self.bell
    }

    /// The next question, once the bell's bytes are taken (edge-triggered:
    /// every byte, so the next ring wakes the poll again).
    pub fn next_question(&mut self) -> Option<Question> {
        let mut sink = [0u8; 64];
        while matches!(self.bell.read(&mut sink), Ok(n) if n > 0) {}
        self.questions.try_recv().ok()
    }

    /// Sends an answer back and wakes the admin thread.
    pub fn answer(&self, id: u64, answer: Answer) {
        // The admin thread keeps at most QUEUE questions out, and the
        // channel holds QUEUE answers: it is never full.
        if self.answers.try_send((id, answer)).is_ok() {
            let _ = self.admin.wake();
        }
    }
}

/// Why a question was not asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AskError {
    /// [`QUEUE`] questions are unanswered already.
    Busy,
    /// The control thread is gone.
    Gone,
}

/// The admin thread's end.
#[derive(Debug)]
pub struct AdminEnd {
    questions: SyncSender<Question>,
    answers: Receiver<(u64, Answer)>,
    bell: pipe::Sender,
    /// Questions asked and not yet answered (abandoned ones included: their
    /// answers still come).
    in_flight: usize,
    next_id: u64,
}

impl AdminEnd {
    /// Asks the control thread; the id its answer will carry.
    pub fn ask(&mut self, ask: Ask) -> Result<u64, AskError> {
        if self.in_flight >= QUEUE {
            return Err(AskError::Busy);
        }
        let id = self.next_id;
        self.questions.try_send(Question { id, ask }).map_err(|e| match e {
            std::sync::mpsc::TrySendError::Full(_) => AskError::Busy,
            std::sync::mpsc::TrySendError::Disconnected(_) => AskError::Gone,
        })?;
        self.next_id += 1;
        self.in_flight += 1;
        // A full pipe is already readable: the ring is not lost.
        match (&self.bell).write(&[1]) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return Err(AskError::Gone),
        }
        Ok(id)
    }

    /// The next answer that came back.
    pub fn take(&mut self) -> Option<(u64, Answer)> {
        match self.answers.try_recv() {
            Ok(a) => {
                self.in_flight = self.in_flight.saturating_sub(1);
                Some(a)
            }
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => None,
        }
    }
}

/// Both ends; `admin` is the `Waker` of the admin thread's poll.
pub fn pair(admin: Arc<Waker>) -> io::Result<(ControlEnd, AdminEnd)> {
    let (q_tx, q_rx) = sync_channel(QUEUE);
    let (a_tx, a_rx) = sync_channel(QUEUE);
    let (bell_tx, bell_rx) = pipe::new()?;
    Ok((
        ControlEnd { questions: q_rx, answers: a_tx, bell: bell_rx, admin },
        AdminEnd { questions: q_tx, answers: a_rx, bell: bell_tx, in_flight: 0, next_id: 0 },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_are_bounded_and_each_answer_frees_a_place() {
        let poll = mio::Poll::new().expect("poll");
        let waker = Arc::new(Waker::new(poll.registry(), mio::Token(0)).expect("waker"));
        let (mut control, mut admin) = pair(waker).expect("pair");
        for _ in 0..QUEUE {
            admin.ask(Ask::Health).expect("room");
        }
        assert_eq!(admin.ask(Ask::Metrics), Err(AskError::Busy));
        let q = control.next_question().expect("a question");
        assert_eq!(q.id, 0);
        control.answer(q.id, Answer::Metrics("up 1\n".into()));
        assert!(matches!(admin.take(), Some((0, Answer::Metrics(_)))));
        assert_eq!(admin.ask(Ask::Metrics), Ok(QUEUE as u64), "room again");
        assert!(admin.take().is_none());
    }
}
