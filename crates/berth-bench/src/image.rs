//! Test images: random layers (incompressible, so no registry gains from compression), an OCI
//! config and manifest, written as an OCI layout for skopeo or pushed directly.

use std::path::Path;

use rand::Rng;
use serde_json::json;

use crate::peers::digest;

/// The OCI manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// An image held in memory.
pub struct Image {
    /// The config blob.
    pub config: Vec<u8>,
    /// The layer blobs.
    pub layers: Vec<Vec<u8>>,
    /// The manifest.
    pub manifest: Vec<u8>,
}

impl Image {
    /// An image with one random layer per size.
    pub fn random(layer_sizes: &[usize]) -> Image {
        let mut rng = rand::rng();
        let layers: Vec<Vec<u8>> = layer_sizes
            .iter()
            .map(|&n| {
                let mut v = vec![0u8; n];
                rng.fill(&mut v[..]);
                v
            })
            .collect();
        let diff_ids: Vec<String> = layers.iter().map(|l| digest(l)).collect();
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "config": {}
        }))
        .unwrap_or_default();
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(&config), "size": config.len()},
            "layers": layers.iter().map(|l| json!({"mediaType": LAYER, "digest": digest(l), "size": l.len()})).collect::<Vec<_>>(),
        }))
        .unwrap_or_default();
        Image {
            config,
            layers,
            manifest,
        }
    }

    /// Total bytes of its blobs.
    pub fn bytes(&self) -> usize {
        self.config.len() + self.layers.iter().map(Vec::len).sum::<usize>() + self.manifest.len()
    }

    /// Writes it as an OCI layout at `dir`, tagged `tag`.
    pub fn write_layout(&self, dir: &Path, tag: &str) -> anyhow::Result<()> {
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs)?;
        for blob in std::iter::once(&self.config)
            .chain(&self.layers)
            .chain(std::iter::once(&self.manifest))
        {
            let d = digest(blob);
            std::fs::write(blobs.join(d.trim_start_matches("sha256:")), blob)?;
        }
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)?;
        let index = json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": digest(&self.manifest), "size": self.manifest.len(),
                "annotations": {"org.opencontainers.image.ref.name": tag}}],
        });
        std::fs::write(dir.join("index.json"), serde_json::to_vec(&index)?)?;
        Ok(())
    }
}
