//! Path safety: every path component read from a torrent is checked here before it can name a
//! file, so that no torrent can make us write outside the output directory.
//!
//! Policy: invalid UTF-8 is replaced lossily (U+FFFD), as libtorrent does; everything else that
//! is dangerous or ambiguous is refused with an error naming the field and the component (we do
//! not silently rename): empty path lists, empty components, `.`, `..`, `/` or `\` inside a
//! component (which also covers absolute paths), NUL, Windows drive prefixes (`C:`), components
//! over 255 bytes, more than [`MAX_PATH_DEPTH`] components, and paths over [`MAX_PATH_BYTES`].

use std::fmt;
use std::path::{Component, Path, PathBuf};

/// Longest path component accepted, in bytes (the usual file-system limit).
pub const MAX_COMPONENT_BYTES: usize = 255;
/// Most components in one file's path, the torrent's name included.
pub const MAX_PATH_DEPTH: usize = 64;
/// Longest relative path accepted (components plus separators), in bytes.
pub const MAX_PATH_BYTES: usize = 4096;

/// Why a path or component was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathProblem {
    /// The path list has no components.
    EmptyList,
    /// A component is the empty string.
    EmptyComponent,
    /// A component is `.`.
    CurrentDir,
    /// A component is `..`.
    ParentDir,
    /// A component contains `/` or `\` (absolute paths included).
    Separator,
    /// A component contains a NUL byte.
    Nul,
    /// A component starts with a Windows drive prefix such as `C:`.
    DrivePrefix,
    /// A component is longer than [`MAX_COMPONENT_BYTES`].
    ComponentTooLong(usize),
    /// More components than [`MAX_PATH_DEPTH`].
    TooDeep(usize),
    /// The whole relative path is longer than [`MAX_PATH_BYTES`].
    TooLong(usize),
}

impl fmt::Display for PathProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathProblem::EmptyList => f.write_str("empty"),
            PathProblem::EmptyComponent => f.write_str("empty component"),
            PathProblem::CurrentDir => f.write_str("component \".\" is not allowed"),
            PathProblem::ParentDir => f.write_str("component \"..\" is not allowed"),
            PathProblem::Separator => f.write_str("contains a path separator"),
            PathProblem::Nul => f.write_str("contains a NUL byte"),
            PathProblem::DrivePrefix => f.write_str("starts with a drive prefix"),
            PathProblem::ComponentTooLong(n) => {
                write!(f, "is {n} bytes long, over {MAX_COMPONENT_BYTES}")
            }
            PathProblem::TooDeep(n) => write!(f, "has {n} components, over {MAX_PATH_DEPTH}"),
            PathProblem::TooLong(n) => write!(f, "is {n} bytes long, over {MAX_PATH_BYTES}"),
        }
    }
}

/// A refused path: which field (e.g. `info.files[3].path`), which component, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PathError {
    /// Dotted path of the field, e.g. `info.files[3].path` or `info.name`.
    pub field: String,
    /// The offending component (after lossy UTF-8 replacement), if one is to blame.
    pub component: Option<String>,
    /// Why it was refused.
    pub problem: PathProblem,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.component, &self.problem) {
            (Some(c), PathProblem::Separator | PathProblem::Nul | PathProblem::DrivePrefix) => {
                write!(f, "{}: component {c:?} {}", self.field, self.problem)
            }
            (Some(c), PathProblem::ComponentTooLong(_)) => {
                let short: String = c.chars().take(32).collect();
                write!(f, "{}: component {short:?}... {}", self.field, self.problem)
            }
            _ => write!(f, "{}: {}", self.field, self.problem),
        }
    }
}

/// Checks one component (already converted to a string); `None` when it is safe.
pub fn component_problem(c: &str) -> Option<PathProblem> {
    let b = c.as_bytes();
    Some(match c {
        "" => PathProblem::EmptyComponent,
        "." => PathProblem::CurrentDir,
        ".." => PathProblem::ParentDir,
        _ if b.contains(&b'/') || b.contains(&b'\\') => PathProblem::Separator,
        _ if b.contains(&0) => PathProblem::Nul,
        _ if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' => PathProblem::DrivePrefix,
        _ if b.len() > MAX_COMPONENT_BYTES => PathProblem::ComponentTooLong(b.len()),
        _ => return None,
    })
}

/// Converts raw bytes to a checked component (invalid UTF-8 replaced lossily).
pub fn sanitize_component(field: &str, raw: &[u8]) -> Result<String, PathError> {
    let c = String::from_utf8_lossy(raw).into_owned();
    match component_problem(&c) {
        None => Ok(c),
        Some(problem) => Err(PathError {
            field: field.to_owned(),
            component: Some(c),
            problem,
        }),
    }
}

/// Checks a whole relative path made of already-checked components: non-empty, not too deep,
/// not too long.
pub fn check_components(field: &str, components: &[String]) -> Result<(), PathError> {
    let err = |problem| PathError {
        field: field.to_owned(),
        component: None,
        problem,
    };
    if components.is_empty() {
        return Err(err(PathProblem::EmptyList));
    }
    if components.len() > MAX_PATH_DEPTH {
        return Err(err(PathProblem::TooDeep(components.len())));
    }
    let bytes: usize = components.iter().map(|c| c.len() + 1).sum::<usize>() - 1;
    if bytes > MAX_PATH_BYTES {
        return Err(err(PathProblem::TooLong(bytes)));
    }
    Ok(())
}

/// Joins `components` under `base`, appending only components that are exactly one normal path
/// element each; anything else (impossible for paths that came through the checks above) is
/// replaced by `_`, so the result can never leave `base`.
pub fn join_checked(base: &Path, components: &[String]) -> PathBuf {
    let mut out = base.to_path_buf();
    for c in components {
        let mut parts = Path::new(c).components();
        let single_normal = matches!(
            (parts.next(), parts.next()),
            (Some(Component::Normal(_)), None)
        );
        if single_normal && component_problem(c).is_none() {
            out.push(c);
        } else {
            out.push("_");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(raw: &[u8]) -> PathProblem {
        sanitize_component("info.files[3].path", raw)
            .unwrap_err()
            .problem
    }

    #[test]
    fn ordinary_components_pass() {
        for ok in [
            "a", "file.txt", "..hidden", "...", ".x", "a b", "ünï", "C", "1:2",
        ] {
            assert_eq!(sanitize_component("f", ok.as_bytes()), Ok(ok.to_owned()));
        }
    }

    #[test]
    fn parent_dir_is_refused() {
        assert_eq!(problem(b".."), PathProblem::ParentDir);
    }

    #[test]
    fn current_dir_is_refused() {
        assert_eq!(problem(b"."), PathProblem::CurrentDir);
    }

    #[test]
    fn empty_component_is_refused() {
        assert_eq!(problem(b""), PathProblem::EmptyComponent);
    }

    #[test]
    fn absolute_paths_and_separators_are_refused() {
        assert_eq!(problem(b"/etc"), PathProblem::Separator);
        assert_eq!(problem(b"/"), PathProblem::Separator);
        assert_eq!(problem(b"a/b"), PathProblem::Separator);
        assert_eq!(problem(b"..\\..\\x"), PathProblem::Separator);
        assert_eq!(problem(b"\\"), PathProblem::Separator);
    }

    #[test]
    fn nul_is_refused() {
        assert_eq!(problem(b"a\0b"), PathProblem::Nul);
    }

    #[test]
    fn drive_prefix_is_refused() {
        assert_eq!(problem(b"C:"), PathProblem::DrivePrefix);
        assert_eq!(problem(b"c:evil"), PathProblem::DrivePrefix);
    }

    #[test]
    fn over_long_component_is_refused() {
        assert!(sanitize_component("f", &[b'a'; 255]).is_ok());
        assert_eq!(problem(&[b'a'; 256]), PathProblem::ComponentTooLong(256));
        // Length counts bytes after lossy replacement: each bad byte becomes 3 bytes.
        assert_eq!(problem(&[0xff; 100]), PathProblem::ComponentTooLong(300));
    }

    #[test]
    fn invalid_utf8_is_replaced_lossily() {
        assert_eq!(
            sanitize_component("f", b"caf\xe9.txt"),
            Ok("caf\u{fffd}.txt".to_owned())
        );
    }

    #[test]
    fn error_names_field_and_component() {
        let e = sanitize_component("info.files[3].path", b"a/b").unwrap_err();
        assert_eq!(
            e.to_string(),
            "info.files[3].path: component \"a/b\" contains a path separator"
        );
        let e = sanitize_component("info.files[7].path", b"..").unwrap_err();
        assert_eq!(
            e.to_string(),
            "info.files[7].path: component \"..\" is not allowed"
        );
    }

    #[test]
    fn empty_deep_and_long_paths_are_refused() {
        let e = check_components("info.files[3].path", &[]).unwrap_err();
        assert_eq!(e.to_string(), "info.files[3].path: empty");
        let deep = vec!["a".to_owned(); MAX_PATH_DEPTH + 1];
        assert_eq!(
            check_components("p", &deep).unwrap_err().problem,
            PathProblem::TooDeep(MAX_PATH_DEPTH + 1)
        );
        let long = vec!["a".repeat(200); 21];
        assert_eq!(
            check_components("p", &long).unwrap_err().problem,
            PathProblem::TooLong(21 * 201 - 1)
        );
        assert!(check_components("p", &["a".to_owned(), "b".to_owned()]).is_ok());
    }

    #[test]
    fn join_never_leaves_the_base() {
        let base = Path::new("out");
        let good = ["dir".to_owned(), "f.txt".to_owned()];
        assert_eq!(join_checked(base, &good), Path::new("out/dir/f.txt"));
        let evil = [
            "..".to_owned(),
            "/etc".to_owned(),
            "a/../..".to_owned(),
            ".".to_owned(),
            String::new(),
            "passwd".to_owned(),
        ];
        let joined = join_checked(base, &evil);
        assert_eq!(joined, Path::new("out/_/_/_/_/_/passwd"));
        assert!(
            joined
                .components()
                .all(|c| matches!(c, Component::Normal(_)))
        );
    }
}
