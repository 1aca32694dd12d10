//! OSV advisories: range evaluation as the schema describes it, ecosystem and release matching,
//! source-package names, severity normalisation (CVSS vectors, labels, 10.0 is Critical), and
//! reading exports from a directory or a zip.

use std::io::Write;

use berth_scan::osv::Match;
use berth_scan::{Advisory, Distro, Package, Severity, Source};
use serde_json::json;

fn advisory(v: serde_json::Value) -> Advisory {
    Advisory::parse(v.to_string().as_bytes()).expect("advisory")
}

fn debian(version_id: &str) -> Distro {
    Distro {
        id: "debian".into(),
        version_id: version_id.into(),
        pretty_name: String::new(),
    }
}

fn ranged(ecosystem: &str, name: &str, kind: &str, events: serde_json::Value) -> Advisory {
    advisory(json!({
        "id": "TEST-1",
        "affected": [{"package": {"ecosystem": ecosystem, "name": name}, "ranges": [{"type": kind, "events": events}]}]
    }))
}

fn fixed(m: Option<Match>) -> Option<Option<String>> {
    m.map(|m| m.fixed_by)
}

#[test]
fn ranges_follow_the_schema() {
    let a = ranged(
        "crates.io",
        "smallvec",
        "SEMVER",
        json!([{"introduced": "0"}, {"fixed": "1.6.1"}, {"introduced": "2.0.0"}, {"last_affected": "2.1.0"}]),
    );
    let crate_at = |v: &str| Package::new(Source::Cargo, "smallvec", v);
    assert_eq!(fixed(a.affects(&crate_at("1.6.0"), None)), Some(Some("1.6.1".into())));
    assert_eq!(fixed(a.affects(&crate_at("1.6.1"), None)), None);
    assert_eq!(fixed(a.affects(&crate_at("1.10.0"), None)), None);
    assert_eq!(fixed(a.affects(&crate_at("2.1.0"), None)), Some(None));
    assert_eq!(fixed(a.affects(&crate_at("2.1.1"), None)), None);
    // Another ecosystem with the same name is not affected.
    assert!(
        a.affects(&Package::new(Source::Npm, "smallvec", "1.0.0"), None)
            .is_none()
    );

    // Events out of order are sorted first; `limit` caps the range.
    let b = ranged(
        "npm",
        "lodash",
        "SEMVER",
        json!([{"fixed": "4.17.21"}, {"introduced": "4.0.0"}, {"limit": "4.17.19"}]),
    );
    let npm = |v: &str| Package::new(Source::Npm, "lodash", v);
    assert!(b.affects(&npm("4.17.18"), None).is_some());
    assert!(b.affects(&npm("4.17.20"), None).is_none());
    assert!(b.affects(&npm("3.10.0"), None).is_none());

    // Enumerated versions match exactly.
    let c = advisory(
        json!({"id": "TEST-2", "affected": [{"package": {"ecosystem": "PyPI", "name": "Django"}, "versions": ["3.2.0"]}]}),
    );
    assert!(
        c.affects(&Package::new(Source::Pypi, "django", "3.2.0"), None)
            .is_some()
    );
    assert!(
        c.affects(&Package::new(Source::Pypi, "django", "3.2.1"), None)
            .is_none()
    );

    // PyPI ranges use PEP 440 (a pre-release is below the release).
    let d = ranged(
        "PyPI",
        "jinja2",
        "ECOSYSTEM",
        json!([{"introduced": "0"}, {"fixed": "2.10.1"}]),
    );
    assert!(
        d.affects(&Package::new(Source::Pypi, "Jinja2", "2.10.1rc1"), None)
            .is_some()
    );
    assert!(
        d.affects(&Package::new(Source::Pypi, "Jinja2", "2.10.1"), None)
            .is_none()
    );

    // A withdrawn advisory matches nothing.
    let mut w = d.clone();
    w.withdrawn = Some("2024-01-01T00:00:00Z".into());
    assert!(w.affects(&Package::new(Source::Pypi, "jinja2", "1.0"), None).is_none());
}

#[test]
fn distribution_ecosystems_match_release_and_source_package() {
    let a = ranged(
        "Debian:12",
        "openssl",
        "ECOSYSTEM",
        json!([{"introduced": "0"}, {"fixed": "3.0.13-1~deb12u1"}]),
    );
    let mut libssl = Package::new(Source::Dpkg, "libssl3", "3.0.11-1~deb12u1");
    libssl.source_name = Some("openssl".into());
    assert_eq!(
        fixed(a.affects(&libssl, Some(&debian("12")))),
        Some(Some("3.0.13-1~deb12u1".into()))
    );
    assert!(a.affects(&libssl, Some(&debian("11"))).is_none(), "another release");
    let ubuntu = Distro {
        id: "ubuntu".into(),
        version_id: "22.04".into(),
        pretty_name: String::new(),
    };
    assert!(a.affects(&libssl, Some(&ubuntu)).is_none(), "another distribution");
    // The source version is compared when the binary was rebuilt with its own version.
    let mut binnmu = Package::new(Source::Dpkg, "libssl3", "3.0.13-1~deb12u1+b1");
    binnmu.source_name = Some("openssl".into());
    binnmu.source_version = Some("3.0.11-1~deb12u1".into());
    assert!(a.affects(&binnmu, Some(&debian("12"))).is_some());

    let alpine = ranged(
        "Alpine:v3.18",
        "openssl",
        "ECOSYSTEM",
        json!([{"introduced": "0"}, {"fixed": "3.1.4-r1"}]),
    );
    let mut crypto = Package::new(Source::Apk, "libcrypto3", "3.1.4-r0");
    crypto.source_name = Some("openssl".into());
    let a318 = Distro {
        id: "alpine".into(),
        version_id: "3.18.4".into(),
        pretty_name: String::new(),
    };
    let a319 = Distro {
        id: "alpine".into(),
        version_id: "3.19.0".into(),
        pretty_name: String::new(),
    };
    assert!(alpine.affects(&crypto, Some(&a318)).is_some());
    assert!(alpine.affects(&crypto, Some(&a319)).is_none());

    let ubuntu_adv = ranged(
        "Ubuntu:22.04:LTS",
        "curl",
        "ECOSYSTEM",
        json!([{"introduced": "0"}, {"fixed": "7.81.0-1ubuntu1.15"}]),
    );
    assert!(
        ubuntu_adv
            .affects(&Package::new(Source::Dpkg, "curl", "7.81.0-1ubuntu1.14"), Some(&ubuntu))
            .is_some()
    );
}

#[test]
fn severity_from_vectors_and_labels() {
    let with = |severity: serde_json::Value| advisory(json!({"id": "S", "severity": severity}));
    // 9.8
    assert_eq!(
        with(json!([{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}])).severity(),
        Severity::Critical
    );
    // 7.5
    assert_eq!(
        with(json!([{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}])).severity(),
        Severity::High
    );
    // 10.0 is Critical (Quay said Unknown).
    let ten = with(json!([{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H"}]));
    assert_eq!(ten.base_score(), Some(10.0));
    assert_eq!(ten.severity(), Severity::Critical);
    // 3.3
    assert_eq!(
        with(json!([{"type": "CVSS_V3", "score": "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:L/I:N/A:N"}])).severity(),
        Severity::Low
    );
    assert_eq!(
        with(json!([{"type": "CVSS_V2", "score": "AV:N/AC:L/Au:N/C:P/I:P/A:P"}])).severity(),
        Severity::High
    );
    assert_eq!(
        with(json!([{"type": "Ubuntu", "score": "medium"}])).severity(),
        Severity::Medium
    );
    assert_eq!(Severity::from_score(10.0), Severity::Critical);
    assert_eq!(Severity::from_score(0.0), Severity::Unknown);
    assert_eq!(Severity::from_score(6.9), Severity::Medium);

    let ghsa = advisory(json!({"id": "GHSA-x", "database_specific": {"severity": "MODERATE"}}));
    assert_eq!(ghsa.severity(), Severity::Medium);
    let deb = advisory(
        json!({"id": "CVE-x", "affected": [{"package": {"ecosystem": "Debian:12", "name": "x"}, "ecosystem_specific": {"urgency": "unimportant"}}]}),
    );
    assert_eq!(deb.severity(), Severity::Negligible);
    assert_eq!(advisory(json!({"id": "none"})).severity(), Severity::Unknown);
}

#[test]
fn description_and_link() {
    let a = advisory(json!({
        "id": "DSA-1",
        "details": "long text",
        "references": [{"type": "FIX", "url": "https://fix"}, {"type": "ADVISORY", "url": "https://adv"}]
    }));
    assert_eq!(a.description(), "long text");
    assert_eq!(a.link(), "https://adv");
    assert_eq!(
        advisory(json!({"id": "X-1"})).link(),
        "https://osv.dev/vulnerability/X-1"
    );
    assert!(Advisory::parse(b"{\"summary\": \"no id\"}").is_err());
    assert!(Advisory::parse(b"not json").is_err());
}

#[test]
fn reads_directories_and_zips() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("debian")).expect("mkdir");
    std::fs::write(dir.path().join("debian/A.json"), json!({"id": "A"}).to_string()).expect("write");
    std::fs::write(dir.path().join("B.json"), "{broken").expect("write");
    std::fs::write(dir.path().join("README"), "ignored").expect("write");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(dir.path().join("all.zip")).expect("zip"));
    zip.start_file("C.json", zip::write::SimpleFileOptions::default())
        .expect("member");
    zip.write_all(json!({"id": "C"}).to_string().as_bytes())
        .expect("member");
    zip.finish().expect("zip");

    let mut ok = Vec::new();
    let mut bad = Vec::new();
    berth_scan::feed::read_path(dir.path(), &mut |(name, r)| match r {
        Ok(a) => ok.push(a.id),
        Err(e) => bad.push(format!("{name}: {e}")),
    })
    .expect("read");
    ok.sort();
    assert_eq!(ok, ["A", "C"]);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(bad[0].contains("B.json"));
    // The total a progress display counts towards: every document read, readable or not.
    assert_eq!(
        berth_scan::feed::count_path(dir.path()).expect("count"),
        ok.len() + bad.len()
    );
    assert_eq!(
        berth_scan::feed::count_path(&dir.path().join("all.zip")).expect("count"),
        1
    );
    assert!(berth_scan::feed::count_path(&dir.path().join("missing")).is_err());
}
