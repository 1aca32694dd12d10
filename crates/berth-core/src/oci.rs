//! OCI identifiers: content digests (`sha256:…`, `sha512:…`), tag names and manifest references.
//!
//! Grammars from the OCI distribution spec:
//! - tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`;
//! - digest: `algorithm:hex`, where Berth accepts `sha256` (64 lowercase hex digits) and `sha512`
//!   (128), the two algorithms the image spec registers.

use crate::CoreError;

/// A registered digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    /// SHA-256.
    Sha256,
    /// SHA-512.
    Sha512,
}

impl DigestAlgorithm {
    /// The name used in digests.
    pub fn as_str(self) -> &'static str {
        match self {
            DigestAlgorithm::Sha256 => "sha256",
            DigestAlgorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            DigestAlgorithm::Sha256 => 64,
            DigestAlgorithm::Sha512 => 128,
        }
    }
}

/// A content digest, `algorithm:hex`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Parses and validates a digest.
    pub fn parse(s: &str) -> Result<Digest, CoreError> {
        let bad = |why: &str| CoreError::invalid("digest", format!("'{s}' {why}"));
        let (algo, hex) = s.split_once(':').ok_or_else(|| bad("must be algorithm:hex"))?;
        let algo = match algo {
            "sha256" => DigestAlgorithm::Sha256,
            "sha512" => DigestAlgorithm::Sha512,
            _ => return Err(bad("uses an unsupported algorithm (sha256 and sha512 are)")),
        };
        if hex.len() != algo.hex_len() || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(bad(&format!("must have {} lowercase hex digits", algo.hex_len())));
        }
        Ok(Digest(s.to_owned()))
    }

    /// Builds a digest from an algorithm and raw hash bytes.
    pub fn from_bytes(algo: DigestAlgorithm, bytes: &[u8]) -> Digest {
        use std::fmt::Write;
        let mut s = String::with_capacity(algo.hex_len() + 7);
        s.push_str(algo.as_str());
        s.push(':');
        for b in bytes {
            let _ = write!(s, "{b:02x}");
        }
        Digest(s)
    }

    /// The algorithm.
    pub fn algorithm(&self) -> DigestAlgorithm {
        if self.0.starts_with("sha512:") {
            DigestAlgorithm::Sha512
        } else {
            DigestAlgorithm::Sha256
        }
    }

    /// The hex part.
    pub fn hex(&self) -> &str {
        self.0.split_once(':').map_or("", |(_, h)| h)
    }

    /// The whole digest as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tag name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    /// Parses and validates a tag.
    pub fn parse(s: &str) -> Result<Tag, CoreError> {
        let b = s.as_bytes();
        let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
        let ok =
            !b.is_empty() && b.len() <= 128 && word(b[0]) && b[1..].iter().all(|&c| word(c) || c == b'.' || c == b'-');
        if !ok {
            return Err(CoreError::invalid(
                "tag",
                format!("'{s}' must match [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}"),
            ));
        }
        Ok(Tag(s.to_owned()))
    }

    /// The tag as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a manifest is addressed: by tag or by digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// A tag.
    Tag(Tag),
    /// A digest.
    Digest(Digest),
}

impl Reference {
    /// A reference containing `:` is a digest; anything else is a tag.
    pub fn parse(s: &str) -> Result<Reference, CoreError> {
        if s.contains(':') {
            Digest::parse(s).map(Reference::Digest)
        } else {
            Tag::parse(s).map(Reference::Tag)
        }
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests() {
        let d = Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap();
        assert_eq!((d.algorithm(), d.hex().len()), (DigestAlgorithm::Sha256, 64));
        assert!(Digest::parse(&format!("sha512:{}", "0".repeat(128))).is_ok());
        for bad in [
            "sha256:abc",
            &format!("sha256:{}", "A".repeat(64)),
            &format!("md5:{}", "a".repeat(32)),
            "nocolon",
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Digest::from_bytes(DigestAlgorithm::Sha256, &[0xab; 32]).as_str(),
            format!("sha256:{}", "ab".repeat(32))
        );
    }

    #[test]
    fn tags_and_references() {
        for ok in ["latest", "v1.2.3", "_x", "A-b_c.d", &"a".repeat(128)] {
            assert!(Tag::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".x", "-x", "a/b", &"a".repeat(129)] {
            assert!(Tag::parse(bad).is_err(), "{bad}");
        }
        assert!(matches!(Reference::parse("v1"), Ok(Reference::Tag(_))));
        assert!(matches!(
            Reference::parse(&format!("sha256:{}", "1".repeat(64))),
            Ok(Reference::Digest(_))
        ));
        assert!(Reference::parse("sha256:zz").is_err());
    }
}
