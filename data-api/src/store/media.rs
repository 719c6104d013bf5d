//! Media blobs on local disk, content-addressed: the name is
//! `<sha256 of the bytes>.<ext>`, so a URL never changes meaning and a
//! repeated upload of the same bytes is a no-op. Files live under
//! `<data_dir>/media/<first two hex digits>/<name>` and are written to a
//! temporary file, fsynced and renamed into place, so a crash never leaves a
//! partial blob under a final name.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

static UPLOAD_SEQ: AtomicU64 = AtomicU64::new(0);

/// Whether `name` is a content-addressed media name: 64 lowercase hex digits,
/// a dot, and a 1–5 character lowercase alphanumeric extension. Everything
/// else (slashes, dots, `..`) is refused before touching the filesystem.
pub fn is_media_name(name: &str) -> bool {
    let Some((stem, ext)) = name.split_once('.') else {
        return false;
    };
    stem.len() == 64
        && stem
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && (1..=5).contains(&ext.len())
        && ext
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Extension from the first bytes (magic numbers), else from the client's
/// file name if it is sane, else `bin`.
pub fn pick_extension(head: &[u8], filename: Option<&str>) -> String {
    let sniffed = if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("jpg")
    } else if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("png")
    } else if head.starts_with(b"GIF8") {
        Some("gif")
    } else if head.len() >= 12 && &head[0..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        Some("webp")
    } else if head.len() >= 8 && &head[4..8] == b"ftyp" {
        Some("mp4")
    } else {
        None
    };
    if let Some(ext) = sniffed {
        return ext.to_string();
    }
    filename
        .and_then(|f| f.rsplit_once('.'))
        .map(|(_, e)| e.to_ascii_lowercase())
        .filter(|e| {
            (1..=5).contains(&e.len())
                && e.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        .unwrap_or_else(|| "bin".to_string())
}

#[derive(Debug, Clone)]
pub struct MediaStore {
    dir: PathBuf,
}

impl MediaStore {
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir.join("tmp"))?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// Where a valid media name lives; `None` for anything not content-addressed.
    pub fn path_of(&self, name: &str) -> Option<PathBuf> {
        if !is_media_name(name) {
            return None;
        }
        Some(self.dir.join(&name[..2]).join(name))
    }

    /// Starts an upload into a temporary file.
    pub async fn begin(&self) -> std::io::Result<Upload> {
        let seq = UPLOAD_SEQ.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .dir
            .join("tmp")
            .join(format!("{}-{seq}.part", std::process::id()));
        let file = tokio::fs::File::create(&tmp).await?;
        Ok(Upload {
            store: self.clone(),
            file: Some(file),
            tmp,
            hasher: Sha256::new(),
            head: Vec::new(),
            size: 0,
            done: false,
        })
    }

    /// Total bytes of stored blobs (for `/metrics`); walks the two-level tree.
    pub fn disk_usage(&self) -> u64 {
        let mut total = 0;
        let Ok(top) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        for entry in top.flatten() {
            if entry.file_name() == "tmp" {
                continue;
            }
            if let Ok(files) = std::fs::read_dir(entry.path()) {
                total += files
                    .flatten()
                    .filter_map(|f| f.metadata().ok())
                    .map(|m| m.len())
                    .sum::<u64>();
            }
        }
        total
    }
}

/// An upload in progress; dropping it unfinished deletes the temporary file.
pub struct Upload {
    store: MediaStore,
    file: Option<tokio::fs::File>,
    tmp: PathBuf,
    hasher: Sha256,
    head: Vec<u8>,
    size: u64,
    done: bool,
}

impl Upload {
    pub async fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        if self.head.len() < 16 {
            let take = (16 - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
        match &mut self.file {
            Some(f) => f.write_all(chunk).await,
            None => Err(std::io::Error::other("upload already finished")),
        }
    }

    /// Makes the blob durable under its content address; returns its name and size.
    pub async fn finish(mut self, filename: Option<&str>) -> std::io::Result<(String, u64)> {
        let mut file = self
            .file
            .take()
            .ok_or_else(|| std::io::Error::other("upload already finished"))?;
        file.flush().await?;
        file.sync_all().await?;
        drop(file);
        let digest = hex::encode(std::mem::take(&mut self.hasher).finalize());
        let name = format!("{digest}.{}", pick_extension(&self.head, filename));
        let path = self
            .store
            .path_of(&name)
            .ok_or_else(|| std::io::Error::other("computed an invalid media name"))?;
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        if tokio::fs::try_exists(&path).await? {
            tokio::fs::remove_file(&self.tmp).await?;
        } else {
            tokio::fs::rename(&self.tmp, &path).await?;
        }
        self.done = true;
        Ok((name, self.size))
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_names() {
        let h = "a".repeat(64);
        assert!(is_media_name(&format!("{h}.jpg")));
        assert!(!is_media_name(&format!("{h}.JPG")));
        assert!(!is_media_name(&format!("{}.jpg", "A".repeat(64))));
        assert!(!is_media_name("../../etc/passwd"));
        assert!(!is_media_name(&format!("{h}.tar.gz")));
        assert!(!is_media_name(&h));
        assert!(!is_media_name(&format!("{h}.toolong")));
    }

    #[test]
    fn extensions() {
        assert_eq!(pick_extension(&[0xFF, 0xD8, 0xFF, 0xE0], None), "jpg");
        assert_eq!(pick_extension(b"\0\0\0\x18ftypmp42", Some("x.mov")), "mp4");
        assert_eq!(pick_extension(b"hello", Some("a.TXT")), "txt");
        assert_eq!(pick_extension(b"hello", Some("a.../../x")), "bin");
        assert_eq!(pick_extension(b"hello", None), "bin");
    }
}
