//! Likeness' own file kinds, and the one sniffer that tells them apart, so that the model
//! and index loaders can say "this is an index, not a model" without knowing each other.

/// First bytes of every index file.
pub const INDEX_MAGIC: &[u8] = b"LIKENESS-INDEX\n";

/// 64-bit FNV-1a: the stable hash behind model ids, index checksums and thumbnail cache
/// names (std's hasher may change between Rust releases, which would change them all).
#[derive(Debug, Clone, Copy)]
pub struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    pub fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    pub fn finish(self) -> u64 {
        self.0
    }

    /// The hash as 16 hex digits.
    pub fn hex(self) -> String {
        format!("{:016x}", self.0)
    }
}

/// What a file's first bytes say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A Likeness index (`.likeness-index`).
    Index,
    /// A `.safetensors` file: a Likeness model, or weights from elsewhere.
    Safetensors,
    /// A PyTorch pickle (`.pt`/`.pth`), which Likeness never loads.
    Pickle,
    Unknown,
}

/// Tells the file kinds apart from their first bytes.
pub fn sniff(bytes: &[u8]) -> FileKind {
    if bytes.starts_with(INDEX_MAGIC) {
        FileKind::Index
    } else if safetensors::SafeTensors::read_metadata(bytes).is_ok() {
        FileKind::Safetensors
    } else if bytes.first() == Some(&0x80) || bytes.starts_with(b"PK\x03\x04") {
        // Pickle protocol 2+ starts with 0x80; torch.save writes a zip archive.
        FileKind::Pickle
    } else {
        FileKind::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_is_told_apart() {
        assert_eq!(sniff(b"LIKENESS-INDEX\n\x01\x00\x00\x00"), FileKind::Index);
        assert_eq!(sniff(b"\x80\x02}q\x00"), FileKind::Pickle);
        assert_eq!(sniff(b"hello"), FileKind::Unknown);
        let tensors: Vec<(&str, safetensors::tensor::TensorView<'_>)> = Vec::new();
        let bytes = safetensors::serialize(tensors, None).expect("serialise");
        assert_eq!(sniff(&bytes), FileKind::Safetensors);
    }
}
