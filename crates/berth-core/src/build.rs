//! Where a build's context comes from: the one shape that starting a build writes, the build
//! worker reads, and the API and the UI show.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A build's source, stored with the build as JSON tagged by `kind` (`upload`, `archive`, `git`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum BuildSource {
    /// A context uploaded to this server (Quay's filedrop), by its file id.
    Upload {
        /// The upload's id (Quay's `resource_key`).
        file_id: String,
    },
    /// A context downloaded from a URL (a tar, a tar.gz or a single Dockerfile).
    Archive {
        /// Where to download it.
        url: String,
    },
    /// A commit of a git repository, cloned by a build trigger.
    Git {
        /// The repository to clone.
        url: String,
        /// The commit to check out.
        commit: String,
    },
}

impl BuildSource {
    /// The upload's id, for an uploaded context.
    pub fn file_id(&self) -> Option<&str> {
        match self {
            BuildSource::Upload { file_id } => Some(file_id),
            _ => None,
        }
    }

    /// The download URL, for an archive.
    pub fn archive_url(&self) -> Option<&str> {
        match self {
            BuildSource::Archive { url } => Some(url),
            _ => None,
        }
    }
}

/// How a page names the source: the URL (at the commit, for git), or "uploaded context".
impl fmt::Display for BuildSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildSource::Upload { .. } => f.write_str("uploaded context"),
            BuildSource::Archive { url } => f.write_str(url),
            BuildSource::Git { url, commit } => write!(f, "{url} at {commit}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_keep_the_stored_shape() {
        let git = BuildSource::Git {
            url: "https://example.com/app.git".into(),
            commit: "abc123".into(),
        };
        let text = serde_json_text(&git);
        assert_eq!(
            text,
            r#"{"kind":"git","url":"https://example.com/app.git","commit":"abc123"}"#
        );
        assert_eq!(git.to_string(), "https://example.com/app.git at abc123");
        let upload = BuildSource::Upload { file_id: "f1".into() };
        assert_eq!(serde_json_text(&upload), r#"{"kind":"upload","file_id":"f1"}"#);
        assert_eq!((upload.file_id(), upload.archive_url()), (Some("f1"), None));
        let archive = BuildSource::Archive {
            url: "https://example.com/c.tgz".into(),
        };
        assert_eq!(archive.archive_url(), Some("https://example.com/c.tgz"));
        assert_eq!(archive.file_id(), None);
    }

    fn serde_json_text(s: &BuildSource) -> String {
        serde_json::to_string(s).unwrap()
    }

    #[test]
    fn stored_sources_read_back() {
        let s: BuildSource = serde_json::from_str(r#"{"kind":"archive","url":"https://e.com/x"}"#).unwrap();
        assert_eq!(
            s,
            BuildSource::Archive {
                url: "https://e.com/x".into()
            }
        );
        assert!(serde_json::from_str::<BuildSource>(r#"{"kind":"ftp"}"#).is_err());
    }
}
