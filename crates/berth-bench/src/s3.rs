//! Scenario 8: push and pull throughput with blobs in S3 — Berth (`[storage] kind = "s3"`)
//! against Distribution's `s3` driver, on the same SeaweedFS bucket in the same run, each under
//! its own key prefix. Pulls are measured twice: with the bytes passing through the registry
//! (both with redirects off), and with each registry's redirect to a presigned URL on.

use std::path::Path;

use crate::image::Image;
use crate::peers::{self, Berth, Running, S3Target};
use crate::progress;
use crate::scenarios::{Ctx, berth_on_sqlite, figure, skopeo};
use crate::stats::Figure;

/// One registry of the pair, as skopeo reaches it.
struct Side<'a> {
    running: &'a Running,
    creds: Option<&'a str>,
}

impl<'a> Side<'a> {
    /// Berth (with its credentials) and Distribution (anonymous), in that order.
    fn pair(berth: &'a Running, dist: &'a Running, creds: &'a str) -> [Side<'a>; 2] {
        [
            Side {
                running: berth,
                creds: Some(creds),
            },
            Side {
                running: dist,
                creds: None,
            },
        ]
    }

    /// Seconds to copy `from` to `to` (docker:// on this registry at one end).
    fn copy(&self, work: &Path, from: &str, to: &str, pushing: bool) -> anyhow::Result<f64> {
        let mut a = vec!["copy", "--quiet"];
        a.push(if pushing {
            "--dest-tls-verify=false"
        } else {
            "--src-tls-verify=false"
        });
        if let Some(c) = self.creds {
            a.extend([if pushing { "--dest-creds" } else { "--src-creds" }, c]);
        }
        a.extend([from, to]);
        Ok(skopeo(work, &a)?.as_secs_f64())
    }
}

/// Scenario 8's figures.
pub async fn s3_throughput(ctx: &Ctx) -> anyhow::Result<Vec<Figure>> {
    let s3 = S3Target::from_env();
    let host = s3
        .endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    anyhow::ensure!(
        std::net::TcpStream::connect(&host).is_ok(),
        "scenario 8 needs an S3 service at {} (scripts/bench starts SeaweedFS)",
        s3.endpoint
    );
    let work = tempfile::tempdir()?;
    let (bdir, ddir) = (work.path().join("berth"), work.path().join("distribution"));
    std::fs::create_dir_all(&bdir)?;
    std::fs::create_dir_all(&ddir)?;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let (bprefix, droot) = (format!("bench-berth-{run}"), format!("bench-distribution-{run}"));
    let b: Berth = berth_on_sqlite(ctx, &bdir)?;
    let creds = format!("$oauthtoken:{}", b.token);

    let images = [
        ("one 64 MiB layer", "big", vec![64usize << 20]),
        ("20 layers of 1 MiB", "many", vec![1 << 20; 20]),
    ];
    let mut figures = Vec::new();
    let mut pushed = Vec::new();
    {
        let berth = b.serve(&s3.berth_env(&bprefix, false))?;
        let dist = peers::distribution_on(&ddir, None, &s3.distribution_storage(&droot, false))?;
        let sides = Side::pair(&berth, &dist, &creds);
        for (label, key, sizes) in &images {
            let mut push = figure("8. S3 push", label, "MB/s", true, "≥ 1× Distribution (s3 driver)");
            let mut pull = figure("8. S3 pull", label, "MB/s", true, "≥ 1× Distribution (s3 driver)");
            for i in 0..ctx.plan.repeats {
                let img = Image::random(sizes);
                let layout = work.path().join(format!("layout-{key}-{i}"));
                img.write_layout(&layout, "v1")?;
                let src = format!("oci:{}:v1", layout.display());
                let mb = img.bytes() as f64 / 1e6;
                for turn in 0..2 {
                    // Alternate which registry goes first.
                    let which = (i + turn) % 2;
                    let side = &sides[which];
                    let dest = format!("docker://{}/bench/{key}-{i}:v1", side.running.host());
                    let t = side.copy(work.path(), &src, &dest, true)?;
                    let out = work.path().join(format!("pulled-{key}-{i}-{which}"));
                    let t2 = side.copy(work.path(), &dest, &format!("oci:{}:v1", out.display()), false)?;
                    std::fs::remove_dir_all(&out).ok();
                    let (p, l) = if which == 0 {
                        (&mut push.berth, &mut pull.berth)
                    } else {
                        (&mut push.peer, &mut pull.peer)
                    };
                    p.push(mb / t);
                    l.push(mb / t2);
                }
                pushed.push((*label, format!("bench/{key}-{i}:v1"), mb));
                std::fs::remove_dir_all(&layout).ok();
                progress(&format!(
                    "8. S3 push/pull {label}: repetition {} of {}",
                    i + 1,
                    ctx.plan.repeats
                ));
            }
            figures.push(push);
            figures.push(pull);
        }
    }
    // The same images again, each registry now redirecting blob downloads to the bucket.
    let berth = b.serve(&s3.berth_env(&bprefix, true))?;
    let dist = peers::distribution_on(&ddir, None, &s3.distribution_storage(&droot, true))?;
    let sides = Side::pair(&berth, &dist, &creds);
    for (label, ..) in &images {
        let mut pull = figure("8. S3 pull, redirect", label, "MB/s", true, "—");
        for (i, (_, reference, mb)) in pushed.iter().filter(|(l, ..)| l == label).enumerate() {
            for turn in 0..2 {
                let which = (i + turn) % 2;
                let side = &sides[which];
                let from = format!("docker://{}/{reference}", side.running.host());
                let out = work.path().join(format!("redirected-{i}-{which}"));
                let t = side.copy(work.path(), &from, &format!("oci:{}:v1", out.display()), false)?;
                std::fs::remove_dir_all(&out).ok();
                let v = if which == 0 { &mut pull.berth } else { &mut pull.peer };
                v.push(mb / t);
            }
        }
        figures.push(pull);
    }
    progress("8. S3 pulls with redirects measured");
    Ok(figures)
}
