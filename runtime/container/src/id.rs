//! Container ids: validated before any path is built from them.

use crate::{bail, Result};

/// Check a container id the way runc does: letters, digits and `_ + - .`,
/// never `.` or `..`, never empty. Ids become directory names under the
/// state root, so anything that could escape it is refused up front.
pub fn validate(id: &str) -> Result<()> {
    let ok_chars = id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.'));
    if id.is_empty() || id == "." || id == ".." || !ok_chars || id.len() > 1024 {
        bail!(
            "invalid container id {id:?}: use 1-1024 characters from [A-Za-z0-9_+.-], not \".\" or \"..\""
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn accepts_runc_style_ids() {
        for id in ["a", "abc-123", "x_y.z+1", "..a", "a..", "0123456789abcdef"] {
            assert!(validate(id).is_ok(), "{id}");
        }
    }

    #[test]
    fn refuses_ids_that_could_escape_the_root() {
        for id in ["", ".", "..", "a/b", "../x", "a b", "a\0b", "/abs", "ä"] {
            assert!(validate(id).is_err(), "{id:?}");
        }
    }
}
