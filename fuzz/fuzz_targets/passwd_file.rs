//! The password file parser (`control::passwd::PasswordFile::parse`) over
//! arbitrary text. Nothing may panic; a file that parses writes back
//! (`to_text`) to a file that parses to the same users, locks (`!` before
//! the scheme) included (no password is checked: an iteration count from
//! the input could cost minutes).
#![no_main]

use control::passwd::PasswordFile;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(file) = PasswordFile::parse(text) else { return };
    let written = file.to_text();
    let again = PasswordFile::parse(&written).expect("a written password file parses");
    assert_eq!(again.to_text(), written, "the file writes back the same");
    for line in written.lines().skip(1) {
        let user = line.split(':').next().unwrap_or_default();
        assert_eq!(file.get(user), again.get(user), "user {user}");
        let locked = line.split(':').nth(1).is_some_and(|scheme| scheme.starts_with('!'));
        assert_eq!(again.get(user).map(|e| e.locked), Some(locked), "user {user}'s lock is where it was written");
    }
});
