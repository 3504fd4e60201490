//! The development secret: with no `TETHER_SECRET_KEY_BASE`, a random key is generated once
//! and kept in a file (default `target/tether-dev-secret`, which cargo projects already keep
//! out of version control; env `TETHER_DEV_SECRET_FILE` names another), so open pages survive
//! a restart of the server and every process started from the same directory agrees.
//!
//! For development only: production sets `TETHER_SECRET_KEY_BASE`. It must never overwrite
//! an existing key, and two processes starting at once must end with the same key (the file
//! is created atomically: written aside, then linked into place only if none exists).

use std::{
    io::Write,
    path::{Path, PathBuf},
};

/// Where the development secret is kept unless `TETHER_DEV_SECRET_FILE` says otherwise.
pub(crate) const DEFAULT_DEV_SECRET_FILE: &str = "target/tether-dev-secret";

/// The key in `path`, creating it (with `generate`) if the file does not exist.
pub(crate) fn load_or_create(
    path: &Path,
    generate: impl FnOnce() -> String,
) -> std::io::Result<String> {
    if let Some(key) = read(path)? {
        return Ok(key);
    }
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let aside = aside(path);
    let mut file = private_file(&aside)?;
    let result = file
        .write_all(generate().as_bytes())
        .and_then(|()| file.sync_all())
        .and_then(|()| match std::fs::hard_link(&aside, path) {
            // Another process made it first: theirs is the key.
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            other => other,
        });
    let _ = std::fs::remove_file(&aside);
    result?;
    read(path)?.ok_or_else(|| std::io::Error::other(format!("{} is empty", path.display())))
}

fn read(path: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text.trim().to_string()).filter(|key| !key.is_empty())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

/// A name beside `path` no other process uses.
fn aside(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.{}", std::process::id(), rand::random::<u32>()));
    path.with_file_name(name)
}

/// A new file only its owner can read.
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_made_once_and_then_read_back() {
        let dir = std::env::temp_dir().join(format!("tether-dev-secret-{}", rand::random::<u64>()));
        let path = dir.join("nested/key");
        let first = load_or_create(&path, || "k".repeat(64)).unwrap();
        assert_eq!(first, "k".repeat(64));
        let again = load_or_create(&path, || "other".into()).unwrap();
        assert_eq!(again, first, "an existing key is never replaced");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "only its owner may read it");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn processes_starting_at_once_agree() {
        let dir = std::env::temp_dir().join(format!("tether-dev-secret-{}", rand::random::<u64>()));
        let path = dir.join("key");
        let keys: Vec<String> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let path = &path;
                    scope.spawn(move || load_or_create(path, || format!("{i}").repeat(64)).unwrap())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(keys.iter().all(|key| key == &keys[0]), "{keys:?}");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "no file left aside");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
