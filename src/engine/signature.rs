//! Proof that a record is Likeness' own: a keyed MAC (BLAKE3's keyed mode) under a secret
//! key kept in the user's data folder, which only Likeness, running as this user, reads.
//!
//! Undo and export remove or replace files only on the word of a record that carries a
//! valid MAC (house style 21). Anyone can compute a public hash of a file's bytes and
//! write it into a journal; nobody without the key can compute this one.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::{EngineError, Result};

/// The key's file name in Likeness' data folder.
pub const KEY_FILE_NAME: &str = "record-key";
const KEY_BYTES: usize = 32;

/// The secret that signs Likeness' records (sort journals, export manifests).
pub struct RecordKey {
    key: [u8; KEY_BYTES],
}

impl std::fmt::Debug for RecordKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecordKey(…)")
    }
}

/// Where the user's key is kept.
pub fn key_path() -> PathBuf {
    super::files::user_data_dir().join(KEY_FILE_NAME)
}

impl RecordKey {
    /// The user's key, made (random, readable by the user alone) when there is none yet.
    pub fn load_or_create() -> Result<Self> {
        Self::load_or_create_at(&key_path())
    }

    /// The user's key if there is one: without it no record can be checked, and so none
    /// is trusted.
    pub fn load() -> Result<Option<Self>> {
        Self::load_at(&key_path())
    }

    pub fn load_at(path: &Path) -> Result<Option<Self>> {
        match super::files::read_regular(path, KEY_BYTES as u64, "Likeness' record key") {
            Ok(bytes) => {
                let key: [u8; KEY_BYTES] = bytes.as_slice().try_into().map_err(|_| {
                    EngineError::bad_file(
                        path,
                        "Likeness' record key is damaged (not 32 bytes); records it signed \
                         can no longer be checked",
                    )
                })?;
                Ok(Some(Self { key }))
            }
            Err(EngineError::Io { error, .. }) if error.kind() == std::io::ErrorKind::NotFound => {
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    /// Makes the key at `path` unless one is there. Two processes making it at once agree:
    /// each writes its own temporary file and links it into place, and the loser reads
    /// the winner's.
    pub fn load_or_create_at(path: &Path) -> Result<Self> {
        if let Some(key) = Self::load_at(path)? {
            return Ok(key);
        }
        let cannot = |e: std::io::Error| {
            EngineError::bad_file(
                path,
                format!(
                    "Likeness' record key cannot be made ({}); it signs sort journals and \
                     export manifests so that undo and export only ever remove Likeness' own \
                     files (nothing was done)",
                    super::error::io_reason(&e)
                ),
            )
        };
        let folder = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(folder).map_err(cannot)?;
        let mut key = [0u8; KEY_BYTES];
        random_bytes(&mut key).map_err(cannot)?;
        let temporary = folder.join(super::atomic::temporary_name());
        let written = (|| {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options.open(&temporary)?;
            file.write_all(&key)?;
            file.sync_all()?;
            match std::fs::hard_link(&temporary, path) {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
                other => other,
            }
        })();
        std::fs::remove_file(&temporary).ok();
        written.map_err(cannot)?;
        Self::load_at(path)?.ok_or_else(|| {
            cannot(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "it vanished as it was made",
            ))
        })
    }

    /// The MAC of `bytes` for records of `purpose` (so that a MAC of one kind of record
    /// never passes for another), as hex.
    pub fn sign(&self, purpose: &str, bytes: &[u8]) -> String {
        self.mac(purpose, bytes).to_hex().to_string()
    }

    /// Whether `mac` is the MAC of `bytes` for `purpose` (compared in constant time).
    pub fn verify(&self, purpose: &str, bytes: &[u8], mac: &str) -> bool {
        blake3::Hash::from_hex(mac).is_ok_and(|given| given == self.mac(purpose, bytes))
    }

    fn mac(&self, purpose: &str, bytes: &[u8]) -> blake3::Hash {
        let mut hasher = blake3::Hasher::new_keyed(&self.key);
        hasher.update(&(purpose.len() as u64).to_le_bytes());
        hasher.update(purpose.as_bytes());
        hasher.update(bytes);
        hasher.finalize()
    }
}

/// A fresh random hex string (a record's nonce), from the system's random source.
pub fn random_hex(bytes: usize) -> Result<String> {
    let mut buffer = vec![0u8; bytes];
    random_bytes(&mut buffer).map_err(|e| EngineError::io(Path::new("/dev/urandom"), e))?;
    Ok(buffer.iter().map(|b| format!("{b:02x}")).collect())
}

fn random_bytes(buffer: &mut [u8]) -> std::io::Result<()> {
    std::fs::File::open("/dev/urandom")?.read_exact(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mac_holds_only_for_the_same_key_purpose_and_bytes() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("key");
        let key = RecordKey::load_or_create_at(&path).expect("made");
        let again = RecordKey::load_or_create_at(&path).expect("read back");
        let mac = key.sign("journal", b"line");
        assert!(again.verify("journal", b"line", &mac));
        assert!(!again.verify("manifest", b"line", &mac));
        assert!(!again.verify("journal", b"line!", &mac));
        assert!(!again.verify("journal", b"line", "not hex"));
        let other = RecordKey::load_or_create_at(&dir.path().join("other")).expect("made");
        assert!(!other.verify("journal", b"line", &mac));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o077, 0, "the key is the user's alone");
        }
        std::fs::write(&path, b"short").expect("damage");
        assert!(RecordKey::load_at(&path).is_err());
    }
}
