//! sha256 digests in OCI form (`sha256:<hex>`), chain ids, and a hashing writer.

use sha2::{Digest as _, Sha256};
use std::io::{self, Write};

/// Algorithm prefix for every digest berth produces.
pub const SHA256_PREFIX: &str = "sha256:";

/// `sha256:<hex>` of a byte slice.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("{SHA256_PREFIX}{}", hex::encode(Sha256::digest(data)))
}

/// Whether `s` is a well-formed `sha256:<64 lower-case hex>` digest.
pub fn is_sha256_digest(s: &str) -> bool {
    s.strip_prefix(SHA256_PREFIX).is_some_and(is_hex64)
}

/// Whether `s` is exactly 64 lower-case hex characters.
pub fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The hex part of a `sha256:` digest (the input unchanged if it has no prefix).
pub fn hex_part(digest: &str) -> &str {
    digest.strip_prefix(SHA256_PREFIX).unwrap_or(digest)
}

/// Chain ids as the OCI image spec defines them: the first is the first diff id, each
/// next one is `sha256(parent_chain + " " + diff_id)`. They name a whole stack of layers,
/// which is what a snapshot is.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff in diff_ids {
        let next = match out.last() {
            None => diff.clone(),
            Some(parent) => sha256_digest(format!("{parent} {diff}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// A writer that hashes and counts what passes through it into an inner writer.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was hashed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Hash bytes that are already in the destination (the kept part of an interrupted
    /// download) without writing them again.
    pub fn absorb(&mut self, buf: &[u8]) {
        self.hasher.update(buf);
        self.len += buf.len() as u64;
    }

    /// The inner writer (to truncate or seek it; the hash is not affected).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// Forget everything hashed so far (the destination was truncated).
    pub fn reset(&mut self) {
        self.hasher = Sha256::new();
        self.len = 0;
    }

    /// The digest and byte count so far, and the inner writer.
    pub fn finish(self) -> (String, u64, W) {
        let digest = format!("{SHA256_PREFIX}{}", hex::encode(self.hasher.finalize()));
        (digest, self.len, self.inner)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts what is read through it, and optionally copies it
/// to a side writer (the content store's ingest while a layer is being unpacked).
pub struct TeeReader<'a, R> {
    inner: R,
    hasher: Sha256,
    len: u64,
    side: Option<&'a mut dyn Write>,
}

impl<'a, R: io::Read> TeeReader<'a, R> {
    pub fn new(inner: R, side: Option<&'a mut dyn Write>) -> Self {
        TeeReader {
            inner,
            hasher: Sha256::new(),
            len: 0,
            side,
        }
    }

    /// Read the rest of the stream (tar readers stop at the end-of-archive marker, but
    /// the diff id covers every byte) and return the digest and length.
    pub fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        let digest = format!("{SHA256_PREFIX}{}", hex::encode(self.hasher.finalize()));
        Ok((digest, self.len))
    }
}

impl<R: io::Read> io::Read for TeeReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        if let Some(side) = self.side.as_mut() {
            side.write_all(&buf[..n])?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_oci_rule() {
        let a = sha256_digest(b"a");
        let b = sha256_digest(b"b");
        let chain = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(chain[0], a);
        assert_eq!(chain[1], sha256_digest(format!("{a} {b}").as_bytes()));
    }

    #[test]
    fn digest_validation() {
        assert!(is_sha256_digest(&sha256_digest(b"")));
        assert!(!is_sha256_digest("sha256:abc"));
        assert!(!is_sha256_digest(&sha256_digest(b"").to_uppercase()));
    }
}
