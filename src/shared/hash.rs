//! Content hashes as people read them: the first 12 hex digits of a sha256 (a model file,
//! a data fingerprint) or of a trial key, as git shortens commits.

/// How many characters a short hash keeps.
pub const SHORT_LEN: usize = 12;

/// The first [`SHORT_LEN`] characters of `hash` (all of it when shorter; never panics,
/// since a hash read from a file or a server may be anything).
pub fn short(hash: &str) -> &str {
    match hash.char_indices().nth(SHORT_LEN) {
        Some((end, _)) => &hash[..end],
        None => hash,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_twelve_characters() {
        assert_eq!(short("0123456789abcdef"), "0123456789ab");
        assert_eq!(short("abc"), "abc");
        assert_eq!(short(""), "");
        assert_eq!(short("ééééééééééééé"), "éééééééééééé");
    }
}
