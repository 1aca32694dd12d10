//! Test-only fault injection. With the `failpoints` feature (enabled by the test suites, never in
//! release builds) a test can arm a named point, and the use case fails there as if the process
//! had died (its transaction is dropped uncommitted), or waits there while it is armed. Without the feature, [`Failpoints::hit`] is a
//! constant `false` and the checks compile away.

/// Armed fault points of one [`crate::App`].
#[derive(Debug, Clone, Default)]
pub struct Failpoints {
    #[cfg(feature = "failpoints")]
    armed: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<&'static str>>>,
}

/// Right before a manifest push commits its transaction (tag, audit entry and queued deliveries).
pub const PUT_MANIFEST_BEFORE_COMMIT: &str = "put_manifest.before_commit";

/// While armed, garbage collection waits after removing a blob's record, before its bytes.
pub const GC_HOLD_BEFORE_BLOB_BYTES: &str = "gc.hold_before_blob_bytes";

/// While armed, a mirror sync waits before each tag (so that a test can cancel it mid-sync).
pub const MIRROR_HOLD_BEFORE_TAG: &str = "mirror.hold_before_tag";

impl Failpoints {
    /// Arms or disarms a point.
    #[cfg(feature = "failpoints")]
    pub fn set(&self, name: &'static str, armed: bool) {
        if let Ok(mut set) = self.armed.lock() {
            if armed {
                set.insert(name);
            } else {
                set.remove(name);
            }
        }
    }

    /// Whether the point is armed.
    pub fn hit(&self, name: &'static str) -> bool {
        #[cfg(feature = "failpoints")]
        {
            self.armed.lock().map(|s| s.contains(name)).unwrap_or(false)
        }
        #[cfg(not(feature = "failpoints"))]
        {
            let _ = name;
            false
        }
    }
}
