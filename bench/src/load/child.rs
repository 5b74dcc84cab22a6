//! Extra generator processes for fleets larger than one process's open-file
//! limit allows (two sockets per device). A child is this program run again
//! as `bench run` with its share of the devices ([`child_args`]): it prints
//! `settled up=N failed=M` once its devices are settled, its progress on
//! stderr, and its result as JSON into a file the parent reads and merges.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::{LoadError, Params, Target};

/// The command line of a child: the `corridor bench run` options, which are
/// this contract's other side (src/main.rs).
pub(crate) fn child_args(target: &Target, params: &Params, scenario: &str, devices: usize, json: &str) -> Vec<String> {
    let mut a: Vec<String> =
        ["bench", "run", scenario, "--gateway", &target.gateway, "--cafile"].into_iter().map(String::from).collect();
    a.push(target.cafile.display().to_string());
    a.extend(["--user".into(), target.user.clone()]);
    if !target.password.is_empty() {
        a.push("--password-stdin".into());
    }
    if let Some((cert, key)) = &target.client_cert {
        a.extend(["--cert".into(), cert.display().to_string(), "--key".into(), key.display().to_string()]);
    }
    let n = |v: &dyn ToString| v.to_string();
    a.extend(["--devices".into(), n(&devices)]);
    a.extend(["--concurrency".into(), n(&(params.concurrency / params.processes.max(1)).max(1))]);
    a.extend(["--seconds".into(), n(&params.seconds), "--threads".into(), n(&params.threads)]);
    a.extend(["--reflector".into(), n(&params.reflector), "--rate".into(), n(&params.rate)]);
    a.extend(["--json".into(), json.into(), "--announce-settled".into()]);
    a
}

#[derive(Debug, Default)]
struct Seen {
    settled: AtomicBool,
    up: AtomicU64,
    failed: AtomicU64,
    /// The last lines of the child's stderr, for its error message.
    tail: Mutex<Vec<String>>,
}

/// One running child.
#[derive(Debug)]
pub(crate) struct Child {
    index: usize,
    process: std::process::Child,
    json: PathBuf,
    seen: Arc<Seen>,
}

impl Child {
    pub(crate) fn spawn(
        target: &Target,
        params: &Params,
        scenario: &str,
        devices: usize,
        processes: usize,
        index: usize,
    ) -> Result<Self, LoadError> {
        let exe = std::env::current_exe().map_err(|e| LoadError::Processes(format!("own executable: {e}")))?;
        let json = std::env::temp_dir().join(format!("corridor-bench-{}-{index}.json", std::process::id()));
        let mut child_params = params.clone();
        child_params.processes = processes;
        let args = child_args(target, &child_params, scenario, devices, &json.display().to_string());
        let mut process = Command::new(&exe)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| LoadError::Processes(format!("starting {}: {e}", exe.display())))?;
        if let Some(mut stdin) = process.stdin.take() {
            writeln!(stdin, "{}", target.password).map_err(|e| LoadError::Processes(format!("child stdin: {e}")))?;
        }
        let seen = Arc::new(Seen::default());
        if let Some(out) = process.stdout.take() {
            let seen = seen.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if line.starts_with("settled ") {
                        seen.settled.store(true, Ordering::Release);
                    }
                }
            });
        }
        if let Some(err) = process.stderr.take() {
            let seen = seen.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    if let Some((up, failed)) = parse_progress(&line) {
                        seen.up.store(up, Ordering::Relaxed);
                        seen.failed.store(failed, Ordering::Relaxed);
                    }
                    if let Ok(mut tail) = seen.tail.lock() {
                        if tail.len() >= 20 {
                            tail.remove(0);
                        }
                        tail.push(line);
                    }
                }
            });
        }
        Ok(Self { index, process, json, seen })
    }

    pub(crate) fn settled(&self) -> bool {
        self.seen.settled.load(Ordering::Acquire)
    }

    /// `(up, failed)` from the child's last progress line.
    pub(crate) fn progress(&self) -> (u64, u64) {
        (self.seen.up.load(Ordering::Relaxed), self.seen.failed.load(Ordering::Relaxed))
    }

    /// Waits for the child and returns its JSON result.
    pub(crate) fn finish(&mut self) -> Result<Value, LoadError> {
        let status = self.process.wait().map_err(|e| LoadError::Processes(format!("waiting: {e}")))?;
        let text = std::fs::read_to_string(&self.json);
        let _ = std::fs::remove_file(&self.json);
        if !status.success() {
            let tail = self.seen.tail.lock().map(|t| t.join("\n")).unwrap_or_default();
            return Err(LoadError::Processes(format!("generator process {} failed ({status}):\n{tail}", self.index)));
        }
        let text = text.map_err(|e| LoadError::Processes(format!("process {} result: {e}", self.index)))?;
        serde_json::from_str(&text).map_err(|e| LoadError::Processes(format!("process {} result: {e}", self.index)))
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // A parent that fails first must not leave its children running.
        if matches!(self.process.try_wait(), Ok(None)) {
            let _ = self.process.kill();
            let _ = self.process.wait();
        }
        let _ = std::fs::remove_file(&self.json);
    }
}

/// `(up, failed)` of a progress line: `[ 1.0s] up 40/50 failed 2 …`.
fn parse_progress(line: &str) -> Option<(u64, u64)> {
    let rest = line.split_once("] up ")?.1;
    let (up, rest) = rest.split_once('/')?;
    let failed = rest.split_once(" failed ")?.1.split_whitespace().next()?;
    Some((up.parse().ok()?, failed.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_are_read_back() {
        assert_eq!(parse_progress("[   1.0s] up 40/50 failed 2 lost 0 | sent 0 received 0"), Some((40, 2)));
        assert_eq!(parse_progress("something else"), None);
    }
}
