//! The admin thread: a mio loop over `[admin] listen`, the ctl socket and
//! their connections. It parses requests, asks the control thread
//! ([`super::link`]) and writes the answers; every connection has a
//! deadline for its current phase, so a slow or silent one is answered or
//! closed in time and never holds up another.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token, Waker};
use service::admin::{parse_request_line, response};
use service::StartError;

use super::conn::{Arrived, Conn, Door, Phase, Stream, Waiting};
use super::link::{self, AdminEnd, Answer, Ask, AskError, ControlEnd};
use super::{route, socket, AdminRequest};
use super::{ANSWER_DEADLINE, HEALTH_DEADLINE, HTTP_REQUEST_DEADLINE, MAX_CTL_CONNECTIONS, MAX_HTTP_CONNECTIONS};
use super::{NOT_FOUND, WRITE_DEADLINE};
use crate::ctl::{self, ErrorKind, Framing, Response};

const TCP: Token = Token(0);
const CTL: Token = Token(1);
const WAKE: Token = Token(2);
const FIRST_CONN: usize = 16;
/// The most of an HTTP request head that is kept.
const MAX_HEAD: usize = 4096;
/// The longest the loop sleeps with nothing due.
const IDLE: Duration = Duration::from_secs(1);

/// The control thread's hold on the admin thread: its end of the link, and
/// what stops the thread (on drop: the gateway stopped).
#[derive(Debug)]
pub struct AdminHandle {
    pub link: ControlEnd,
    ctl_socket: PathBuf,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

impl AdminHandle {
    /// The ctl socket's path: the file a privilege drop after start must
    /// hand to the service's group (`chown root:GROUP`), keeping mode 0660.
    pub fn ctl_socket_path(&self) -> &Path {
        &self.ctl_socket
    }
}

impl Drop for AdminHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Binds `[admin] listen` (if set) and the ctl socket, and starts the
/// admin thread.
pub fn start(listen: Option<SocketAddr>, ctl_socket: &Path) -> Result<AdminHandle, StartError> {
    let poll = Poll::new().map_err(|e| StartError::Io("creating the admin thread's event loop", e))?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKE).map_err(|e| StartError::Io("creating the admin waker", e))?);
    let tcp = match listen {
        Some(a) => {
            let mut l = mio::net::TcpListener::bind(a).map_err(|e| StartError::Io("binding admin.listen", e))?;
            poll.registry()
                .register(&mut l, TCP, Interest::READABLE)
                .map_err(|e| StartError::Io("registering the admin listener", e))?;
            Some(l)
        }
        None => None,
    };
    let ctl = socket::bind(ctl_socket).map_err(StartError::Config)?;
    ctl.set_nonblocking(true).map_err(|e| StartError::Io("the ctl socket", e))?;
    let mut ctl = mio::net::UnixListener::from_std(ctl);
    poll.registry()
        .register(&mut ctl, CTL, Interest::READABLE)
        .map_err(|e| StartError::Io("registering the ctl socket", e))?;
    let (control_end, admin_end) =
        link::pair(waker.clone()).map_err(|e| StartError::Io("creating the admin wake-up pipe", e))?;
    let stop = Arc::new(AtomicBool::new(false));
    let server = Server {
        poll,
        tcp,
        ctl,
        ctl_socket: ctl_socket.to_owned(),
        link: admin_end,
        conns: HashMap::new(),
        next_token: FIRST_CONN,
        stop: stop.clone(),
    };
    let thread = std::thread::Builder::new()
        .name("corridor-admin".into())
        .spawn(move || server.run())
        .map_err(|e| StartError::Io("starting the admin thread", e))?;
    tracing::info!(ctl_socket = %ctl_socket.display(), admin_listen = ?listen, "admin thread started");
    Ok(AdminHandle { link: control_end, ctl_socket: ctl_socket.to_owned(), stop, waker, thread: Some(thread) })
}

struct Server {
    poll: Poll,
    tcp: Option<mio::net::TcpListener>,
    ctl: mio::net::UnixListener,
    ctl_socket: PathBuf,
    link: AdminEnd,
    conns: HashMap<Token, Conn>,
    next_token: usize,
    stop: Arc<AtomicBool>,
}

/// A ctl error response, as bytes to write.
fn ctl_error(kind: ErrorKind, message: impl Into<String>) -> Vec<u8> {
    Response::error(kind, message).to_line().into_bytes()
}

/// "Cannot answer now", in the door's own terms.
fn unavailable(door: Door, message: &str) -> Vec<u8> {
    match door {
        Door::Http => response("503 Service Unavailable", &format!("{message}\n")),
        Door::Ctl(_) => ctl_error(ErrorKind::Unavailable, message),
    }
}

impl Server {
    fn run(mut self) {
        let mut events = Events::with_capacity(64);
        while !self.stop.load(Ordering::Acquire) {
            let now = Instant::now();
            let timeout =
                self.conns.values().map(|c| c.deadline.saturating_duration_since(now)).min().unwrap_or(IDLE).min(IDLE);
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::error!(error = %e, "the admin thread's event loop failed; admin is off until restart");
                break;
            }
            let now = Instant::now();
            for ev in events.iter() {
                match ev.token() {
                    TCP => self.accept_http(now),
                    CTL => self.accept_ctl(now),
                    WAKE => {}
                    t => self.on_conn(t, now),
                }
            }
            self.take_answers(now);
            self.expire(now);
        }
        let _ = std::fs::remove_file(&self.ctl_socket);
    }

    fn count(&self, http: bool) -> usize {
        self.conns.values().filter(|c| (c.door == Door::Http) == http).count()
    }

    fn add(&mut self, mut stream: Stream, door: Door, deadline: Instant) {
        let token = Token(self.next_token);
        self.next_token += 1;
        if let Err(e) = self.poll.registry().register(stream.source(), token, Interest::READABLE | Interest::WRITABLE) {
            tracing::warn!(error = %e, "could not register an admin connection");
            return;
        }
        self.conns.insert(token, Conn::new(stream, door, deadline));
    }

    fn accept_http(&mut self, now: Instant) {
        loop {
            let Some(l) = self.tcp.as_ref() else { return };
            match l.accept() {
                Ok((stream, peer)) => {
                    if self.count(true) >= MAX_HTTP_CONNECTIONS {
                        tracing::debug!(%peer, "admin connection refused: {MAX_HTTP_CONNECTIONS} held already");
                        continue;
                    }
                    self.add(Stream::Tcp(stream), Door::Http, now + HTTP_REQUEST_DEADLINE);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    return;
                }
            }
        }
    }

    fn accept_ctl(&mut self, now: Instant) {
        loop {
            match self.ctl.accept() {
                Ok((mut stream, _)) => {
                    if self.count(false) >= MAX_CTL_CONNECTIONS {
                        let busy = ctl_error(ErrorKind::Unavailable, "too many ctl connections at once; try again");
                        let _ = stream.write(&busy);
                        continue;
                    }
                    match socket::peer_cred(&stream) {
                        Ok(peer) => self.add(Stream::Unix(stream), Door::Ctl(peer), now + ctl::REQUEST_DEADLINE),
                        Err(e) => tracing::warn!(error = %e, "ctl connection without peer credentials; closed"),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::warn!(error = %e, "ctl accept failed");
                    return;
                }
            }
        }
    }

    fn on_conn(&mut self, t: Token, now: Instant) {
        let Some(c) = self.conns.get(&t) else { return };
        match c.phase {
            Phase::Reading => self.on_request_bytes(t, now),
            // Nothing more is read; a peer that left is found out when its
            // answer is written.
            Phase::Waiting { .. } => {}
            Phase::Writing => self.flush(t),
        }
    }

    fn on_request_bytes(&mut self, t: Token, now: Instant) {
        let Some(c) = self.conns.get_mut(&t) else { return };
        let limit = match c.door {
            Door::Http => MAX_HEAD,
            Door::Ctl(_) => ctl::MAX_REQUEST,
        };
        let arrived = c.read(limit);
        if arrived == Arrived::Failed || (arrived == Arrived::Ended && c.inbox.is_empty()) {
            return self.remove(t);
        }
        let ended = arrived == Arrived::Ended;
        match c.door {
            Door::Http => {
                let whole = c.inbox.windows(4).any(|w| w == b"\r\n\r\n") || c.inbox.len() >= MAX_HEAD;
                if !whole && !ended {
                    return;
                }
                match parse_request_line(&c.inbox).map(|(m, p)| route(&m, &p)) {
                    Some(AdminRequest::Metrics) => self.ask(t, Ask::Metrics, Waiting::Metrics, now),
                    Some(AdminRequest::Health) => self.ask(t, Ask::Health, Waiting::Health, now),
                    Some(AdminRequest::NotFound) => self.respond(t, response("404 Not Found", NOT_FOUND), now),
                    None => self.respond(t, response("400 Bad Request", ""), now),
                }
            }
            Door::Ctl(peer) => {
                let line = match ctl::framing(&c.inbox) {
                    Framing::Line(n) => c.inbox.get(..n).unwrap_or_default(),
                    Framing::Partial if ended => &c.inbox,
                    Framing::Partial => return,
                    Framing::TooLong => {
                        let e = format!("the request is over {} bytes without a newline", ctl::MAX_REQUEST);
                        return self.respond(t, ctl_error(ErrorKind::BadRequest, e), now);
                    }
                };
                match ctl::parse_request(line) {
                    Ok(request) => {
                        tracing::debug!(?request, uid = peer.uid, pid = peer.pid, "ctl request");
                        self.ask(t, Ask::Ctl { request, peer }, Waiting::Ctl, now);
                    }
                    Err(e) => self.respond(t, ctl_error(ErrorKind::BadRequest, e), now),
                }
            }
        }
    }

    fn ask(&mut self, t: Token, ask: Ask, what: Waiting, now: Instant) {
        let Some(door) = self.conns.get(&t).map(|c| c.door) else { return };
        match self.link.ask(ask) {
            Ok(query) => {
                if let Some(c) = self.conns.get_mut(&t) {
                    c.phase = Phase::Waiting { query, what };
                    c.deadline = now + if what == Waiting::Health { HEALTH_DEADLINE } else { ANSWER_DEADLINE };
                }
            }
            Err(AskError::Busy) => self.respond(t, unavailable(door, "too many admin requests in flight"), now),
            Err(AskError::Gone) => self.respond(t, unavailable(door, "the control thread is gone"), now),
        }
    }

    fn respond(&mut self, t: Token, bytes: Vec<u8>, now: Instant) {
        if let Some(c) = self.conns.get_mut(&t) {
            c.respond(bytes, now + WRITE_DEADLINE);
        }
        self.flush(t);
    }

    fn flush(&mut self, t: Token) {
        let Some(c) = self.conns.get_mut(&t) else { return };
        if !matches!(c.flush(), Ok(false)) {
            self.remove(t);
        }
    }

    fn remove(&mut self, t: Token) {
        if let Some(mut c) = self.conns.remove(&t) {
            let _ = self.poll.registry().deregister(c.stream.source());
        }
    }

    /// The control thread's answers, to the connections still waiting for
    /// them (one that timed out already got its 503).
    fn take_answers(&mut self, now: Instant) {
        while let Some((id, answer)) = self.link.take() {
            let waiting =
                self.conns.iter().find(|(_, c)| matches!(c.phase, Phase::Waiting { query, .. } if query == id));
            let Some(t) = waiting.map(|(t, _)| *t) else { continue };
            let bytes = match answer {
                Answer::Metrics(text) => response("200 OK", &text),
                Answer::Health(shards) => match ctl::shard_problems(&shards) {
                    p if p.is_empty() => response("200 OK", "ok\n"),
                    p => response("503 Service Unavailable", &format!("{}\n", p.join("\n"))),
                },
                Answer::Ctl(r) => r.to_line().into_bytes(),
            };
            self.respond(t, bytes, now);
        }
    }

    /// Connections whose phase outlived its deadline.
    fn expire(&mut self, now: Instant) {
        let due: Vec<Token> = self.conns.iter().filter(|(_, c)| c.deadline <= now).map(|(t, _)| *t).collect();
        for t in due {
            let Some(c) = self.conns.get(&t) else { continue };
            let bytes = match (c.phase, c.door) {
                (Phase::Writing, _) => {
                    self.remove(t);
                    continue;
                }
                (Phase::Reading, Door::Http) => response(
                    "408 Request Timeout",
                    &format!("the request head did not arrive within {} s\n", HTTP_REQUEST_DEADLINE.as_secs()),
                ),
                (Phase::Reading, Door::Ctl(_)) => ctl_error(
                    ErrorKind::BadRequest,
                    format!(
                        "the request did not arrive within {} s (send one JSON object on one line)",
                        ctl::REQUEST_DEADLINE.as_secs()
                    ),
                ),
                (Phase::Waiting { what, .. }, door) => {
                    let limit = if what == Waiting::Health { HEALTH_DEADLINE } else { ANSWER_DEADLINE };
                    tracing::warn!(
                        ?what,
                        limit_ms = limit.as_millis() as u64,
                        "the control loop did not answer an admin request in time"
                    );
                    unavailable(door, &format!("the control loop did not answer within {} ms", limit.as_millis()))
                }
            };
            self.respond(t, bytes, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctl::Request;
    use std::io::Read;
    use std::os::unix::net::UnixStream;

    /// The admin thread with only a ctl socket, and a stand-in control
    /// thread answering every question with an empty session list.
    fn admin(name: &str) -> (AdminHandle, PathBuf, std::thread::JoinHandle<()>, Arc<AtomicBool>) {
        let dir = std::env::temp_dir().join(format!("corridor-admin-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("ctl.sock");
        let mut handle = start(None, &path).expect("start");
        let done = Arc::new(AtomicBool::new(false));
        // The handle's link moves to the stand-in; the handle keeps the thread.
        let (stand_in_end, _) = link::pair(handle.waker.clone()).expect("pair");
        let mut link = std::mem::replace(&mut handle.link, stand_in_end);
        let control = std::thread::spawn({
            let done = done.clone();
            move || {
                while !done.load(Ordering::Acquire) {
                    while let Some(q) = link.next_question() {
                        link.answer(q.id, Answer::Ctl(Response::Sessions { sessions: Vec::new() }));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        });
        (handle, path, control, done)
    }

    fn ask(path: &Path, bytes: &[u8]) -> String {
        let mut s = UnixStream::connect(path).expect("connect");
        s.write_all(bytes).expect("write");
        let mut answer = String::new();
        s.read_to_string(&mut answer).expect("read");
        answer
    }

    #[test]
    fn a_silent_ctl_client_gets_its_deadline_while_others_are_answered() {
        let (handle, path, control, done) = admin("silent");
        let mut silent = UnixStream::connect(&path).expect("connect");
        for _ in 0..3 {
            let answer = ask(&path, Request::Sessions.to_line().as_bytes());
            assert_eq!(answer, "{\"result\":\"sessions\",\"sessions\":[]}\n");
        }
        let mut answer = String::new();
        silent.read_to_string(&mut answer).expect("read");
        assert!(answer.contains("did not arrive within 1 s"), "{answer}");
        let answer = ask(&path, b"{\"command\":\"reboot\"}\n");
        assert!(answer.contains("bad_request") && answer.contains("reboot"), "{answer}");
        drop(handle);
        assert!(!path.exists(), "the socket goes with the admin thread");
        done.store(true, Ordering::Release);
        let _ = control.join();
        let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    }
}
