//! The password file: one user per line,
//! `name:[!]pbkdf2-sha256:ITERATIONS:SALT_HEX:HASH_HEX[:GROUP]`.
//! PBKDF2-HMAC-SHA256 through aws-lc-rs (a FIPS-approved KDF); the
//! comparison is constant-time inside `pbkdf2::verify`.
//!
//! A `!` before the scheme locks the user, as shadow(5) marks a locked
//! password: the hash stays, so `--unlock` restores the same password, and
//! a file without any `!` (every file written before locking existed)
//! reads as before.

use std::num::NonZeroU32;
use std::path::Path;

use aws_lc_rs::pbkdf2;

/// Iterations for new hashes (OWASP's 2023 guidance for PBKDF2-SHA256).
pub const DEFAULT_ITERATIONS: u32 = 600_000;
const SALT_LEN: usize = 16;
const HASH_LEN: usize = 32;
const SCHEME: &str = "pbkdf2-sha256";
/// Before the scheme: the user is locked.
const LOCKED: char = '!';

/// One user's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub user: String,
    iterations: NonZeroU32,
    salt: Vec<u8>,
    hash: Vec<u8>,
    pub group: Option<String>,
    /// A locked user's password opens nothing (`corridor passwd --lock`).
    pub locked: bool,
}

/// A password file problem, with the line it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdError {
    pub line: usize,
    pub problem: &'static str,
}

impl core::fmt::Display for PasswdError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "password file line {}: {}", self.line, self.problem)
    }
}

impl std::error::Error for PasswdError {}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok())).collect()
}

/// A user name we accept: printable, no separator, not empty.
pub fn valid_user(u: &str) -> bool {
    !u.is_empty() && u.len() <= 64 && u.chars().all(|c| c.is_ascii_graphic() && c != ':')
}

impl Entry {
    /// A fresh entry with a random salt.
    pub fn new(user: &str, password: &str, group: Option<&str>, iterations: u32) -> Option<Self> {
        let iterations = NonZeroU32::new(iterations)?;
        if !valid_user(user) || group.is_some_and(|g| !valid_user(g)) {
            return None;
        }
        let mut salt = vec![0u8; SALT_LEN];
        aws_lc_rs::rand::fill(&mut salt).ok()?;
        let mut hash = vec![0u8; HASH_LEN];
        pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA256, iterations, &salt, password.as_bytes(), &mut hash);
        Some(Self { user: user.to_string(), iterations, salt, hash, group: group.map(str::to_string), locked: false })
    }

    /// Whether `password` opens this account: never for a locked user,
    /// whose check costs the same PBKDF2 run as any other, so that timing
    /// does not tell which users are locked.
    pub fn verify(&self, password: &str) -> bool {
        let matches =
            pbkdf2::verify(pbkdf2::PBKDF2_HMAC_SHA256, self.iterations, &self.salt, password.as_bytes(), &self.hash)
                .is_ok();
        matches && !self.locked
    }

    /// PBKDF2 iterations of this user's hash.
    pub fn iterations(&self) -> u32 {
        self.iterations.get()
    }

    pub fn to_line(&self) -> String {
        let lock = if self.locked { "!" } else { "" };
        let mut l = format!("{}:{lock}{SCHEME}:{}:{}:{}", self.user, self.iterations, hex(&self.salt), hex(&self.hash));
        if let Some(g) = &self.group {
            l.push(':');
            l.push_str(g);
        }
        l
    }

    fn parse(line: &str, n: usize) -> Result<Self, PasswdError> {
        let e = |problem| PasswdError { line: n, problem };
        let mut f = line.split(':');
        let user = f.next().filter(|u| valid_user(u)).ok_or(e("bad user name"))?;
        let scheme = f.next().unwrap_or_default();
        let (locked, scheme) = match scheme.strip_prefix(LOCKED) {
            Some(rest) => (true, rest),
            None => (false, scheme),
        };
        if scheme != SCHEME {
            return Err(e("unknown hash scheme (expected pbkdf2-sha256, or !pbkdf2-sha256 when locked)"));
        }
        let iterations =
            f.next().and_then(|i| i.parse().ok()).and_then(NonZeroU32::new).ok_or(e("bad iteration count"))?;
        let salt = f.next().and_then(unhex).filter(|s| !s.is_empty()).ok_or(e("bad salt"))?;
        let hash = f.next().and_then(unhex).filter(|h| h.len() == HASH_LEN).ok_or(e("bad hash"))?;
        let group = f.next().map(str::to_string);
        if f.next().is_some() {
            return Err(e("too many fields"));
        }
        Ok(Self { user: user.to_string(), iterations, salt, hash, group, locked })
    }
}

/// All users of a password file.
#[derive(Debug, Clone, Default)]
pub struct PasswordFile {
    entries: Vec<Entry>,
}

impl PasswordFile {
    pub fn parse(text: &str) -> Result<Self, PasswdError> {
        let mut entries: Vec<Entry> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let e = Entry::parse(line, i + 1)?;
            if entries.iter().any(|x| x.user == e.user) {
                return Err(PasswdError { line: i + 1, problem: "user listed twice" });
            }
            entries.push(e);
        }
        Ok(Self { entries })
    }

    pub fn load(path: &Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        Self::parse(&text).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    pub fn get(&self, user: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.user == user)
    }

    /// Adds or replaces a user.
    pub fn set(&mut self, entry: Entry) {
        match self.entries.iter_mut().find(|e| e.user == entry.user) {
            Some(e) => *e = entry,
            None => self.entries.push(entry),
        }
    }

    /// Removes a user; `false` when there was none of that name.
    pub fn remove(&mut self, user: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.user != user);
        self.entries.len() != before
    }

    /// Locks or unlocks a user, keeping their hash; `false` when there is
    /// none of that name.
    pub fn set_locked(&mut self, user: &str, locked: bool) -> bool {
        match self.entries.iter_mut().find(|e| e.user == user) {
            Some(e) => {
                e.locked = locked;
                true
            }
            None => false,
        }
    }

    pub fn to_text(&self) -> String {
        let mut s =
            String::from("# corridor password file: user:[!]pbkdf2-sha256:iterations:salt:hash[:group] (! = locked)\n");
        for e in &self.entries {
            s.push_str(&e.to_line());
            s.push('\n');
        }
        s
    }

    /// Writes the file atomically, mode 0600: into a temporary file of a
    /// fresh random name beside it, created exclusively (`O_EXCL`: never
    /// through a link or into a file someone else prepared), then renamed
    /// over it.
    pub fn store(&self, path: &Path) -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".{}.tmp", crate::session::random_hex::<8>()));
        let tmp = path.with_file_name(name);
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        let written = f.write_all(self.to_text().as_bytes()).and_then(|()| f.sync_all());
        let renamed = written.and_then(|()| std::fs::rename(&tmp, path));
        if renamed.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        renamed
    }

    /// Checks a login. Unknown and locked users cost the same PBKDF2 work
    /// as known ones, so timing does not reveal which user names exist or
    /// which are locked.
    pub fn check(&self, user: &str, password: &str) -> Option<&Entry> {
        match self.get(user) {
            Some(e) if e.verify(password) => Some(e),
            Some(_) => None,
            None => {
                let mut sink = [0u8; HASH_LEN];
                let iters = self.entries.first().map_or(NonZeroU32::MIN, |e| e.iterations);
                pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA256, iters, &[0; SALT_LEN], password.as_bytes(), &mut sink);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_verify() {
        let mut f = PasswordFile::default();
        f.set(Entry::new("alice", "s3cret", Some("staff"), 1000).expect("entry"));
        f.set(Entry::new("bob", "hunter2", None, 1000).expect("entry"));
        let again = PasswordFile::parse(&f.to_text()).expect("parse");
        assert_eq!(again.check("alice", "s3cret").and_then(|e| e.group.clone()), Some("staff".into()));
        assert!(again.check("alice", "wrong").is_none());
        assert!(again.check("carol", "s3cret").is_none());
        assert!(again.check("bob", "hunter2").is_some());
    }

    #[test]
    fn a_locked_user_is_refused_the_right_password_until_unlocked() {
        let mut f = PasswordFile::default();
        f.set(Entry::new("alice", "s3cret", Some("staff"), 1000).expect("entry"));
        f.set(Entry::new("bob", "hunter2", None, 1000).expect("entry"));
        assert!(f.set_locked("alice", true));
        assert!(!f.set_locked("carol", true), "no such user");
        let text = f.to_text();
        assert!(text.contains("\nalice:!pbkdf2-sha256:1000:"), "{text}");
        let locked = PasswordFile::parse(&text).expect("parse");
        assert!(locked.get("alice").is_some_and(|e| e.locked));
        assert!(locked.check("alice", "s3cret").is_none(), "the right password opens no locked account");
        assert!(locked.check("bob", "hunter2").is_some(), "others are untouched");
        let mut unlocked = locked.clone();
        assert!(unlocked.set_locked("alice", false));
        let unlocked = PasswordFile::parse(&unlocked.to_text()).expect("parse");
        assert_eq!(unlocked.check("alice", "s3cret").and_then(|e| e.group.clone()), Some("staff".into()));
        assert_eq!(unlocked.to_text(), f.to_text().replace(":!pbkdf2", ":pbkdf2"), "the same hash, unlocked");
    }

    #[test]
    fn a_deleted_user_is_gone() {
        let mut f = PasswordFile::default();
        f.set(Entry::new("alice", "s3cret", None, 1000).expect("entry"));
        f.set(Entry::new("bob", "hunter2", None, 1000).expect("entry"));
        assert!(f.remove("alice"));
        assert!(!f.remove("alice"), "already gone");
        let again = PasswordFile::parse(&f.to_text()).expect("parse");
        assert!(again.get("alice").is_none() && again.check("alice", "s3cret").is_none());
        assert_eq!(again.entries().map(|e| e.user.as_str()).collect::<Vec<_>>(), ["bob"]);
    }

    /// A file written before locking existed (no `!`, the old header) reads as before.
    #[test]
    fn files_without_the_lock_marker_still_parse() {
        let old = "# corridor password file: user:pbkdf2-sha256:iterations:salt:hash[:group]\n\
                   alice:pbkdf2-sha256:1000:000102030405060708090a0b0c0d0e0f:\
                   33a78c377ca7b6590fa1b215cc970fba516076f108ecb68af58ec95d86021701:staff\n";
        let f = PasswordFile::parse(old).expect("an old file");
        let alice = f.get("alice").expect("alice");
        assert!(!alice.locked);
        assert_eq!((alice.iterations(), alice.group.as_deref()), (1000, Some("staff")));
        for bad in ["!!pbkdf2-sha256", "pbkdf2-sha256!", "!"] {
            let line = old.replace(":pbkdf2-sha256:", &format!(":{bad}:"));
            assert!(PasswordFile::parse(&line).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_lines_say_which() {
        let e = PasswordFile::parse("# c\n\nalice:md5:1:00:00\n").expect_err("bad");
        assert_eq!(e.line, 3);
        assert!(Entry::new("a:b", "x", None, 1).is_none());
    }
}
