//! Layer indexing and stacking on tars built here: compression by magic bytes, whiteouts and
//! opaque directories across layers, each package database and lockfile, Go build info, limits,
//! and malformed input failing with a reason.

use std::io::Write;
use std::time::{Duration, Instant};

use berth_scan::layer::{Facts, Limits, index_layer};
use berth_scan::{ImageIndex, LayerIndex, ScanError, Source, image};

/// A tar of `(path, mode, content)` entries.
fn tar(entries: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, mode, content) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(*mode);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, *content).expect("append");
    }
    b.into_inner().expect("finish")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip")
}

fn zstd(bytes: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(bytes, ruzstd::encoding::CompressionLevel::Fastest)
}

const DPKG: &[u8] = b"Package: libssl3\nStatus: install ok installed\nVersion: 3.0.11-1~deb12u1\nSource: openssl\nDescription: x\n continued line\n\nPackage: removed\nStatus: deinstall ok config-files\nVersion: 1.0\n\nPackage: bash\nStatus: install ok installed\nVersion: 5.2.15-2+b2\nSource: bash (5.2.15-2)\n";
const OS: &[u8] = b"PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n";

fn index(bytes: &[u8]) -> LayerIndex {
    index_layer(bytes, &Limits::default()).expect("index")
}

fn names(img: &ImageIndex) -> Vec<String> {
    img.packages
        .iter()
        .map(|f| format!("{}@{}", f.package.name, f.package.version))
        .collect()
}

#[test]
fn reads_dpkg_and_os_release_in_every_compression() {
    let raw = tar(&[("./etc/os-release", 0o644, OS), ("var/lib/dpkg/status", 0o644, DPKG)]);
    for bytes in [raw.clone(), gzip(&raw), zstd(&raw)] {
        let layer = index(&bytes);
        let img = image::stack(&[("sha256:l1".into(), layer)]);
        let distro = img.distro.clone().expect("os-release");
        assert_eq!((distro.id.as_str(), distro.version_id.as_str()), ("debian", "12"));
        assert_eq!(names(&img), ["bash@5.2.15-2+b2", "libssl3@3.0.11-1~deb12u1"]);
        let ssl = &img.packages[1];
        assert_eq!(ssl.package.source_name.as_deref(), Some("openssl"));
        assert_eq!(ssl.layer, "sha256:l1");
        assert_eq!(img.packages[0].package.source_version.as_deref(), Some("5.2.15-2"));
    }
}

#[test]
fn whiteouts_and_opaque_directories_hide_lower_layers() {
    let lower = index(&tar(&[
        ("var/lib/dpkg/status", 0o644, DPKG),
        ("app/Cargo.lock", 0o644, b"[[package]]\nname = \"smallvec\"\nversion = \"1.6.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n\n[[package]]\nname = \"mine\"\nversion = \"0.1.0\"\n"),
        ("srv/requirements.txt", 0o644, b"# pinned\nDjango==3.2.0 ; python_version > '3'\nrequests>=2\nPyYAML[extra]==5.3.1\n-r other.txt\n"),
    ]));
    assert_eq!(lower.files.len(), 3);
    // The next layer deletes the lockfile and replaces /srv wholesale.
    let upper = index(&tar(&[
        ("app/.wh.Cargo.lock", 0o644, b""),
        ("srv/.wh..wh..opq", 0o644, b""),
        (
            "srv/new/poetry.lock",
            0o644,
            b"[[package]]\nname = \"Jinja2\"\nversion = \"2.10\"\n",
        ),
    ]));
    assert_eq!(upper.whiteouts, ["app/Cargo.lock"]);
    assert_eq!(upper.opaque, ["srv"]);
    let both = image::stack(&[("sha256:a".into(), lower.clone()), ("sha256:b".into(), upper)]);
    assert_eq!(
        names(&both),
        ["bash@5.2.15-2+b2", "libssl3@3.0.11-1~deb12u1", "jinja2@2.10"]
    );
    assert_eq!(both.packages[2].layer, "sha256:b");
    let only_lower = image::stack(&[("sha256:a".into(), lower)]);
    assert_eq!(
        names(&only_lower),
        [
            "bash@5.2.15-2+b2",
            "libssl3@3.0.11-1~deb12u1",
            "smallvec@1.6.0",
            "django@3.2.0",
            "pyyaml@5.3.1"
        ]
    );
    // A whiteout of a directory removes everything under it.
    let dir_gone = index(&tar(&[("var/lib/.wh.dpkg", 0o644, b"")]));
    let img = image::stack(&[
        ("a".into(), index(&tar(&[("var/lib/dpkg/status", 0o644, DPKG)]))),
        ("b".into(), dir_gone),
    ]);
    assert!(img.packages.is_empty());
}

#[test]
fn reads_apk_npm_go_mod_and_distroless_dpkg() {
    let layer = index(&tar(&[
        ("lib/apk/db/installed", 0o644, b"C:Q1abc=\nP:libcrypto3\nV:3.1.4-r0\no:openssl\n\nP:busybox\nV:1.36.1-r15\n"),
        ("web/package-lock.json", 0o644, br#"{"lockfileVersion":3,"packages":{"":{"name":"web"},"node_modules/lodash":{"version":"4.17.20"},"node_modules/a/node_modules/@scope/b":{"version":"1.0.0"},"node_modules/linked":{"link":true}}}"#),
        ("old/package-lock.json", 0o644, br#"{"lockfileVersion":1,"dependencies":{"minimist":{"version":"0.0.8","dependencies":{"deep":{"version":"1.0.0"}}}}}"#),
        ("src/go.mod", 0o644, b"module example.com/x\n\ngo 1.21\n\nrequire golang.org/x/net v0.17.0\nrequire (\n\tgolang.org/x/text v0.3.7 // indirect\n)\n"),
        ("var/lib/dpkg/status.d/tzdata", 0o644, b"Package: tzdata\nVersion: 2024a-0+deb12u1\n"),
        ("var/lib/dpkg/status.d/tzdata.md5sums", 0o644, b"abc  file\n"),
    ]));
    let img = image::stack(&[("l".into(), layer)]);
    let mut got: Vec<(Source, String)> = img
        .packages
        .iter()
        .map(|f| (f.package.source, format!("{}@{}", f.package.name, f.package.version)))
        .collect();
    got.sort();
    let want = [
        (Source::Dpkg, "tzdata@2024a-0+deb12u1"),
        (Source::Apk, "busybox@1.36.1-r15"),
        (Source::Apk, "libcrypto3@3.1.4-r0"),
        (Source::Npm, "@scope/b@1.0.0"),
        (Source::Npm, "deep@1.0.0"),
        (Source::Npm, "lodash@4.17.20"),
        (Source::Npm, "minimist@0.0.8"),
        (Source::Go, "golang.org/x/net@0.17.0"),
        (Source::Go, "golang.org/x/text@0.3.7"),
    ];
    let want: Vec<(Source, String)> = want.iter().map(|(s, n)| (*s, (*n).to_owned())).collect();
    assert_eq!(got, want);
    let crypto = img
        .packages
        .iter()
        .find(|f| f.package.name == "libcrypto3")
        .expect("libcrypto3");
    assert_eq!(crypto.package.source_name.as_deref(), Some("openssl"));
}

/// A fake Go binary: an ELF header, then the build info blob as Go 1.18+ writes it.
fn go_binary() -> Vec<u8> {
    let mut b = b"\x7fELF".to_vec();
    b.resize(4096, 0);
    b.extend_from_slice(b"\xff Go buildinf:");
    b.push(8); // pointer size
    b.push(2); // inline strings
    b.resize(4096 + 32, 0);
    let push = |b: &mut Vec<u8>, s: &[u8]| {
        let mut n = s.len();
        while n >= 0x80 {
            b.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        b.push(n as u8);
        b.extend_from_slice(s);
    };
    push(&mut b, b"go1.21.3");
    let sentinel = [
        0x30u8, 0x77, 0xaf, 0x0c, 0x92, 0x74, 0x08, 0x02, 0x41, 0xe1, 0xc1, 0x07, 0xe6, 0xd6, 0x18, 0xe6,
    ];
    let mut info = sentinel.to_vec();
    info.extend_from_slice(b"path\texample.com/tool\nmod\texample.com/tool\t(devel)\t\ndep\tgolang.org/x/crypto\tv0.14.0\th1:abc=\ndep\tgithub.com/old/lib\tv1.0.0\th1:def=\n=>\tgithub.com/new/lib\tv1.2.0\th1:ghi=\n");
    info.extend_from_slice(&[
        0xf9, 0x32, 0x43, 0x31, 0x86, 0x18, 0x20, 0x72, 0x00, 0x82, 0x42, 0x10, 0x41, 0x16, 0xd8, 0xf2,
    ]);
    push(&mut b, &info);
    b.resize(b.len() + 100, 0);
    b
}

#[test]
fn reads_go_build_info_from_executables_only() {
    let bin = go_binary();
    let layer = index(&tar(&[
        ("usr/local/bin/tool", 0o755, &bin),
        ("data/not-executable", 0o644, &bin),
    ]));
    assert_eq!(layer.files.keys().collect::<Vec<_>>(), ["usr/local/bin/tool"]);
    let img = image::stack(&[("l".into(), layer)]);
    assert_eq!(
        names(&img),
        [
            "github.com/new/lib@1.2.0",
            "golang.org/x/crypto@0.14.0",
            "stdlib@1.21.3"
        ]
    );
}

#[test]
fn malformed_files_are_noted_and_malformed_layers_fail() {
    let layer = index(&tar(&[
        ("a/Cargo.lock", 0o644, b"[[package]\nnot toml"),
        ("b/package-lock.json", 0o644, b"{"),
    ]));
    assert!(matches!(layer.files.get("a/Cargo.lock"), Some(Facts::Skipped { .. })));
    let img = image::stack(&[("l".into(), layer)]);
    assert_eq!(img.skipped.len(), 2);

    let mut truncated = gzip(&tar(&[("var/lib/dpkg/status", 0o644, DPKG)]));
    truncated.truncate(truncated.len() / 2);
    let err = index_layer(&truncated[..], &Limits::default()).expect_err("truncated gzip");
    assert!(matches!(err, ScanError::Malformed(_)), "{err:?}");

    let mut corrupt = tar(&[("var/lib/dpkg/status", 0o644, DPKG)]);
    corrupt[148..156].copy_from_slice(b"garbage!"); // the header checksum
    let err = index_layer(&corrupt[..], &Limits::default()).expect_err("bad checksum");
    assert!(matches!(err, ScanError::Malformed(_)), "{err:?}");

    let err = index_layer(&b"\x28\xb5\x2f\xfdnot zstd at all"[..], &Limits::default()).expect_err("bad zstd");
    assert!(matches!(err, ScanError::Malformed(_)), "{err:?}");
}

#[test]
fn limits_stop_a_layer_with_a_reason() {
    let many: Vec<(String, u32, &[u8])> = (0..20).map(|i| (format!("f{i}"), 0o644, &b"x"[..])).collect();
    let entries: Vec<(&str, u32, &[u8])> = many.iter().map(|(p, m, c)| (p.as_str(), *m, *c)).collect();
    let bytes = tar(&entries);
    let few = Limits {
        max_files: 10,
        ..Limits::default()
    };
    let err = index_layer(&bytes[..], &few).expect_err("too many files");
    assert!(err.to_string().contains("max_files"), "{err}");

    let small = Limits {
        max_unpacked_bytes: 4096,
        ..Limits::default()
    };
    let err = index_layer(&gzip(&bytes)[..], &small).expect_err("too big");
    assert!(err.to_string().contains("max_unpacked_bytes"), "{err}");

    let late = Limits {
        deadline: Some(Instant::now() - Duration::from_secs(1)),
        ..Limits::default()
    };
    let err = index_layer(&bytes[..], &late).expect_err("out of time");
    assert!(err.to_string().contains("time_budget_secs"), "{err}");

    let tiny = Limits {
        max_file_bytes: 10,
        ..Limits::default()
    };
    let layer = index_layer(&tar(&[("var/lib/dpkg/status", 0o644, DPKG)])[..], &tiny).expect("index");
    assert!(
        matches!(layer.files.get("var/lib/dpkg/status"), Some(Facts::Skipped { reason }) if reason.contains("max_file_bytes"))
    );
}

/// An RPM header blob with the given string tags and an epoch.
fn rpm_blob(name: &str, version: &str, release: &str, epoch: Option<u32>, source_rpm: &str) -> Vec<u8> {
    let mut data = Vec::new();
    let mut entries = Vec::new();
    for (tag, s) in [(1000u32, name), (1001, version), (1002, release), (1044, source_rpm)] {
        entries.push((tag, 6u32, data.len() as u32));
        data.extend_from_slice(s.as_bytes());
        data.push(0);
    }
    if let Some(e) = epoch {
        while data.len() % 4 != 0 {
            data.push(0);
        }
        entries.push((1003, 4, data.len() as u32));
        data.extend_from_slice(&e.to_be_bytes());
    }
    let mut blob = (entries.len() as u32).to_be_bytes().to_vec();
    blob.extend_from_slice(&(data.len() as u32).to_be_bytes());
    for (tag, kind, off) in entries {
        for n in [tag, kind, off, 1] {
            blob.extend_from_slice(&n.to_be_bytes());
        }
    }
    blob.extend_from_slice(&data);
    blob
}

#[test]
fn rpm_headers_and_databases() {
    let p = berth_scan::parse::rpm_header(&rpm_blob(
        "openssl-libs",
        "3.0.7",
        "24.el9",
        Some(1),
        "openssl-3.0.7-24.el9.src.rpm",
    ))
    .expect("header");
    assert_eq!(
        (p.name.as_str(), p.version.as_str()),
        ("openssl-libs", "1:3.0.7-24.el9")
    );
    assert_eq!(p.source_name.as_deref(), Some("openssl"));
    assert!(berth_scan::parse::rpm_header(&[0, 0, 0, 9, 0, 0, 0, 1]).is_err());
    // The database file is handed to the caller, who has SQLite.
    let layer = index(&tar(&[("var/lib/rpm/rpmdb.sqlite", 0o644, b"SQLite format 3\0")]));
    assert_eq!(layer.rpm_databases.len(), 1);
}
