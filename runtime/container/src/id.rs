//! Container ids: validated before any path is built from them.

use crate::{bail, Result};

/// The longest id: it names the container's state directory (and, by
/// default, its cgroups), and a file name has at most NAME_MAX = 255 bytes.
pub const MAX_LEN: usize = 255;

/// Check a container id the way runc does: letters, digits and `_ + - .`,
/// never `.` or `..`, never empty. Ids become directory names under the
/// state root, so anything that could escape it is refused up front, and so
/// is anything longer than a file name may be.
pub fn validate(id: &str) -> Result<()> {
    let ok_chars = id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.'));
    if id.is_empty() || id == "." || id == ".." || !ok_chars {
        bail!(
            "{}: {id:?}: use 1-{MAX_LEN} characters from [A-Za-z0-9_+.-], not \".\" or \"..\"",
            crate::runc_errors::INVALID_ID
        );
    }
    if id.len() > MAX_LEN {
        bail!(
            "{}: {id:?} has {} characters, at most {MAX_LEN} are allowed (the id names the container's state directory)",
            crate::runc_errors::INVALID_ID,
            id.len()
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
    fn ids_fit_in_a_file_name() {
        assert!(validate(&"a".repeat(255)).is_ok());
        for n in [256, 1024, 5000] {
            let e = validate(&"a".repeat(n)).unwrap_err().to_string();
            assert!(
                e.contains(&format!("has {n} characters, at most 255")),
                "{e}"
            );
        }
    }

    #[test]
    fn refuses_ids_that_could_escape_the_root() {
        for id in ["", ".", "..", "a/b", "../x", "a b", "a\0b", "/abs", "ä"] {
            assert!(validate(id).is_err(), "{id:?}");
        }
    }
}
