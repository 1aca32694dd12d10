//! `deploy/Containerfile`, built with buildah and run with podman: the server starts as a non-root
//! user and its health check answers.
//!
//! This machine cannot pull base images, so the test makes both offline and passes them as the
//! Containerfile's build arguments: the runtime base is busybox with the C libraries the binary
//! links, and the build image already holds the binary this test run built (at `/out/berth`, which
//! makes the Containerfile skip its `cargo build`). Everything else — the user, the layout, the
//! environment, the entrypoint, the HEALTHCHECK — is the file as shipped.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Runs a command; its stdout, or a failure naming the command and its stderr.
fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn must(program: &str, args: &[&str]) -> String {
    run(program, args).unwrap_or_else(|e| panic!("{e}"))
}

/// Removes what the test made, however it ends.
struct Cleanup {
    container: String,
    images: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = run("podman", &["rm", "-f", "-t", "0", &self.container]);
        for image in &self.images {
            let _ = run("podman", &["rmi", "-f", image]);
        }
    }
}

/// A busybox image (`/bin/sh` and the usual commands) with `extra` host files at the same paths.
fn base_image(name: &str, extra: &[(&Path, &str)]) {
    let c = must("buildah", &["from", "scratch"]);
    must("buildah", &["copy", &c, "/bin/busybox", "/bin/busybox"]);
    must(
        "buildah",
        &[
            "run",
            "--isolation",
            "chroot",
            &c,
            "/bin/busybox",
            "--install",
            "-s",
            "/bin",
        ],
    );
    must(
        "buildah",
        &["run", "--isolation", "chroot", &c, "/bin/mkdir", "-p", "/etc", "/tmp"],
    );
    for (from, to) in extra {
        must("buildah", &["copy", &c, from.to_str().unwrap(), to]);
    }
    must("buildah", &["commit", "-q", "--rm", &c, name]);
}

#[test]
fn the_containerfile_builds_and_serves_as_a_non_root_user() {
    let tag = uuid_like();
    let (build, runtime, image) = (
        format!("localhost/berth-ci-build:{tag}"),
        format!("localhost/berth-ci-runtime:{tag}"),
        format!("localhost/berth-ci:{tag}"),
    );
    let container = format!("berth-ci-{tag}");
    let _cleanup = Cleanup {
        container: container.clone(),
        images: vec![image.clone(), build.clone(), runtime.clone()],
    };
    let work = tempfile::tempdir().unwrap();
    // The binary without its debug sections (a tenth of the size, the same program).
    let binary = work.path().join("berth");
    must(
        "objcopy",
        &["--strip-debug", env!("CARGO_BIN_EXE_berth"), binary.to_str().unwrap()],
    );
    let libs = must("ldd", &[binary.to_str().unwrap()]);
    let libs: Vec<&str> = libs
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with('/')))
        .collect();
    assert!(!libs.is_empty(), "ldd found no libraries");
    let lib_files: Vec<(&Path, &str)> = libs.iter().map(|l| (Path::new(*l), *l)).collect();
    base_image(&runtime, &lib_files);
    base_image(&build, &[(binary.as_path(), "/out/berth")]);

    let containerfile = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/Containerfile");
    let context = work.path().join("context");
    std::fs::create_dir(&context).unwrap();
    must(
        "buildah",
        &[
            "bud",
            "-q",
            "--isolation",
            "chroot",
            "--format",
            "docker",
            "--pull=never",
            "--build-arg",
            &format!("BUILD_IMAGE={build}"),
            "--build-arg",
            &format!("RUNTIME_IMAGE={runtime}"),
            "-f",
            containerfile.to_str().unwrap(),
            "-t",
            &image,
            context.to_str().unwrap(),
        ],
    );
    let config = must(
        "podman",
        &[
            "image",
            "inspect",
            "--format",
            "{{.Config.User}} {{json .Config.Entrypoint}}",
            &image,
        ],
    );
    assert_eq!(config, r#"10001:10001 ["/usr/local/bin/berth"]"#);

    must(
        "podman",
        &[
            "run",
            "-d",
            "--name",
            &container,
            "--runtime",
            "/usr/sbin/runc",
            "--network",
            "none",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            &image,
        ],
    );
    // `berth healthcheck` inside the container asks /health/instance of the server it runs.
    berth_testkit::eventually_blocking(Duration::from_secs(60), || {
        run("podman", &["exec", &container, "/usr/local/bin/berth", "healthcheck"]).map_err(|e| {
            format!(
                "{e}\nlogs: {}",
                run("podman", &["logs", &container]).unwrap_or_default()
            )
        })
    });
    // The image's own HEALTHCHECK, as podman runs it.
    must("podman", &["healthcheck", "run", &container]);
    let uid = must("podman", &["exec", &container, "/bin/id", "-u"]);
    assert_eq!(uid, "10001", "the server runs as a non-root user");
    let owner = must(
        "podman",
        &["exec", &container, "/bin/stat", "-c", "%u", "/var/lib/berth/berth.db"],
    );
    assert_eq!(owner, "10001", "its SQLite database is in the data volume");
}

fn uuid_like() -> String {
    format!(
        "{:x}{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos()
    )
}
