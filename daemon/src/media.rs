//! Content-addressed media: a finished file is named by its sha256, so its URL
//! is permanent and the same video processed twice is stored once. Retention
//! removes the oldest files past a size budget and anything past an age.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};

use crate::models::sha256_file;

#[derive(Debug, Clone)]
pub struct MediaStore {
    dir: PathBuf,
    max_bytes: u64,
    max_age: Duration,
}

impl MediaStore {
    pub fn open(dir: &Path, max_bytes: u64, max_age_days: u64) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("media.dir: creating {}", dir.display()))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            max_bytes,
            max_age: Duration::from_secs(max_age_days * 86_400),
        })
    }

    /// Move a finished file in under its content name; returns that name.
    pub fn put(&self, file: &Path, extension: &str) -> Result<String> {
        let name = format!("{}.{extension}", sha256_file(file)?);
        let dest = self.dir.join(&name);
        if dest.exists() {
            std::fs::remove_file(file)?;
        } else {
            std::fs::rename(file, &dest).or_else(|_| std::fs::copy(file, &dest).map(|_| ()))?;
        }
        self.sweep()?;
        Ok(name)
    }

    /// The file behind a media name, if the name is one of ours and exists.
    /// Only `<64 hex>.<ext>` is accepted: no paths, no traversal; and only a
    /// regular file, never a symlink (which could point anywhere).
    pub fn path(&self, name: &str) -> Option<PathBuf> {
        valid_name(name)
            .then(|| self.dir.join(name))
            .filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_file()))
    }

    fn sweep(&self) -> Result<()> {
        let mut files: Vec<(SystemTime, u64, PathBuf)> = std::fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                m.is_file().then(|| {
                    (
                        m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                        m.len(),
                        e.path(),
                    )
                })
            })
            .collect();
        files.sort(); // oldest first
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        let now = SystemTime::now();
        for (modified, len, path) in files {
            let old = now
                .duration_since(modified)
                .is_ok_and(|age| age > self.max_age);
            if old || total > self.max_bytes {
                tracing::info!(file = %path.display(), old, "media retention: removing");
                std::fs::remove_file(&path)?;
                total -= len;
            }
        }
        Ok(())
    }
}

pub fn valid_name(name: &str) -> bool {
    let Some((hash, ext)) = name.split_once('.') else {
        return false;
    };
    hash.len() == 64
        && hash
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        && matches!(ext, "mp4" | "jpg")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_content_addresses_only() {
        let h = "a".repeat(64);
        assert!(valid_name(&format!("{h}.mp4")));
        assert!(!valid_name(&format!("{}.mp4", "A".repeat(64))));
        assert!(!valid_name("../etc/passwd"));
        assert!(!valid_name(&format!("../{h}.mp4")));
        assert!(!valid_name(&format!("{h}.mp4/..")));
        assert!(!valid_name(&format!("{h}.exe")));
    }

    #[test]
    fn symlinks_are_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let store = MediaStore::open(dir.path(), 1 << 20, 30).unwrap();
        let secret = dir.path().join("secret.txt");
        std::fs::write(&secret, "not media").unwrap();
        let name = format!("{}.jpg", "b".repeat(64));
        std::os::unix::fs::symlink(&secret, dir.path().join(&name)).unwrap();
        assert_eq!(store.path(&name), None);
        let real = format!("{}.jpg", "c".repeat(64));
        std::fs::write(dir.path().join(&real), "jpeg").unwrap();
        assert_eq!(store.path(&real), Some(dir.path().join(&real)));
    }

    #[test]
    fn put_is_idempotent_and_retention_keeps_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let store = MediaStore::open(&dir.path().join("media"), 25, 30).unwrap();
        let put = |content: &str| {
            let f = dir.path().join("upload");
            std::fs::write(&f, content).unwrap();
            store.put(&f, "mp4").unwrap()
        };
        let a = put("0123456789");
        assert_eq!(put("0123456789"), a);
        assert!(store.path(&a).is_some());
        std::thread::sleep(Duration::from_millis(20));
        let b = put("abcdefghij");
        std::thread::sleep(Duration::from_millis(20));
        let c = put("ABCDEFGHIJ");
        // 30 bytes > 25: the oldest goes.
        assert!(store.path(&a).is_none());
        assert!(store.path(&b).is_some() && store.path(&c).is_some());
    }
}
