//! Running a build's commands (git, the builder, the pusher): the `BuildRunner` that starts them
//! as processes, and the watch over each one that streams its output into the build log and stops
//! it on a cancel request or at the deadline.

use std::path::Path;
use std::time::{Duration, Instant};

use berth_store::builds::BuildRow;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader, Lines};
use tokio::sync::{Notify, mpsc};

use super::log::LogSink;
use super::worker::End;
use crate::{App, AppError, Result};

/// How a command that ran ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// It exited with status 0.
    Success,
    /// It exited otherwise: how (`status 2`, `a signal`).
    Failed(String),
    /// It was stopped on request, with everything it started.
    Stopped,
}

/// Runs the commands a build is made of. The server runs them as processes
/// ([`ProcessRunner`]); tests of the build's phases run scripted ones.
#[async_trait::async_trait]
pub trait BuildRunner: Send + Sync {
    /// Runs `args` (the program, then its arguments) in `dir`, sending each line it writes
    /// (stdout and stderr) to `lines` as it comes, until it exits, or until `stop` is notified:
    /// then it and everything it started are killed. An error means it could not be started.
    async fn run(&self, args: &[String], dir: &Path, lines: mpsc::Sender<String>, stop: &Notify) -> Result<Exit>;
}

/// Runs each command as a process in its own process group, so that stopping it stops all it
/// started (buildah's and podman's helpers).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessRunner;

/// One of a process's output streams, read line by line.
type Stream = Lines<BufReader<Box<dyn AsyncRead + Send + Unpin>>>;

/// The next line of a stream; `None` (and the stream dropped) at its end or on a read error.
async fn next_line(stream: &mut Option<Stream>) -> Option<String> {
    let line = match stream {
        Some(s) => s.next_line().await.ok().flatten(),
        None => None,
    };
    if line.is_none() {
        *stream = None;
    }
    line
}

#[async_trait::async_trait]
impl BuildRunner for ProcessRunner {
    async fn run(&self, args: &[String], dir: &Path, lines: mpsc::Sender<String>, stop: &Notify) -> Result<Exit> {
        let Some((program, rest)) = args.split_first() else {
            return Err(AppError::Unavailable("no command configured".into()));
        };
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(rest)
            .current_dir(dir)
            .env("BUILDAH_ISOLATION", "chroot")
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| AppError::Unavailable(format!("could not run {program}: {e}")))?;
        let pid = child.id();
        let reader = |s: Box<dyn AsyncRead + Send + Unpin>| BufReader::new(s).lines();
        let mut out = child.stdout.take().map(|s| reader(Box::new(s)));
        let mut err = child.stderr.take().map(|s| reader(Box::new(s)));
        // Until both streams end (the process and whatever it left behind have exited).
        while out.is_some() || err.is_some() {
            let line = tokio::select! {
                l = next_line(&mut out), if out.is_some() => l,
                l = next_line(&mut err), if err.is_some() => l,
                () = stop.notified() => {
                    kill_group(pid).await;
                    let _ = child.kill().await;
                    return Ok(Exit::Stopped);
                }
            };
            if let Some(l) = line
                && lines.send(l).await.is_err()
            {
                break;
            }
        }
        let status = child
            .wait()
            .await
            .map_err(|e| AppError::Unavailable(format!("waiting for {program}: {e}")))?;
        Ok(if status.success() {
            Exit::Success
        } else {
            Exit::Failed(
                status
                    .code()
                    .map_or_else(|| "a signal".to_owned(), |c| format!("status {c}")),
            )
        })
    }
}

/// Kills a process group (the builder and everything it started). `kill(1)` rather than a
/// syscall, because this workspace forbids `unsafe`.
async fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid {
        let _ = tokio::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .status()
            .await;
    }
}

/// How one command of a build ended.
pub(super) enum Step {
    Ok,
    Failed(String),
    Cancelled,
    TimedOut,
}

impl Step {
    /// The build's end when this step stops it.
    pub(super) fn end(self, timeout: Duration) -> End {
        match self {
            Step::Cancelled => End::Cancelled,
            Step::TimedOut => End::Expired(format!(
                "the build took longer than {} seconds (builds.timeout_secs)",
                timeout.as_secs()
            )),
            Step::Failed(m) => End::Failed(m),
            Step::Ok => End::Failed("unexpected success".into()),
        }
    }
}

/// A command line for the log, with the credential file's contents never shown (only its path is
/// an argument).
fn shown(args: &[String]) -> String {
    args.join(" ")
}

impl App {
    /// Runs one of `build`'s commands through the build runner, streaming its output into the
    /// log (flushed every second); stops it on a cancel request or at the deadline. A command
    /// that fails is described by its last non-empty line.
    pub(super) async fn run_command(
        &self,
        build: &BuildRow,
        args: &[String],
        dir: &Path,
        deadline: Instant,
        log: &mut LogSink,
    ) -> Result<Step> {
        let Some(program) = args.first() else {
            return Ok(Step::Failed("no command configured".into()));
        };
        log.line("command", &shown(args)).await;
        let (sender, mut lines) = mpsc::channel::<String>(256);
        let stop = Notify::new();
        let run = self.build_runner.run(args, dir, sender, &stop);
        tokio::pin!(run);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut last = std::collections::VecDeque::with_capacity(6);
        let mut stopping = None;
        let exit = loop {
            tokio::select! {
                exit = &mut run => break exit?,
                Some(l) = lines.recv() => {
                    log.line("output", &l).await;
                    last.push_back(l);
                    if last.len() > 5 {
                        last.pop_front();
                    }
                }
                _ = tick.tick(), if stopping.is_none() => {
                    log.flush().await;
                    if Instant::now() > deadline {
                        stopping = Some(Step::TimedOut);
                    } else if self.cancel_requested(build.id).await? {
                        stopping = Some(Step::Cancelled);
                    }
                    if stopping.is_some() {
                        stop.notify_one();
                    }
                }
            }
        };
        // What the command wrote last, still in the channel.
        while let Ok(l) = lines.try_recv() {
            log.line("output", &l).await;
            last.push_back(l);
        }
        log.flush().await;
        match exit {
            Exit::Success => Ok(Step::Ok),
            Exit::Stopped => Ok(stopping.unwrap_or(Step::Cancelled)),
            Exit::Failed(how) => {
                let tail = last
                    .iter()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .cloned()
                    .unwrap_or_default();
                Ok(Step::Failed(format!("{program} exited with {how}: {tail}")))
            }
        }
    }

    async fn cancel_requested(&self, id: i64) -> Result<bool> {
        Ok(berth_store::builds::cancel_requested(&mut self.store.conn().await?, id).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(args: &[&str], stop_after: Option<Duration>) -> (Exit, Vec<String>) {
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        let (tx, mut rx) = mpsc::channel(16);
        let stop = Notify::new();
        // Stops the command once, then waits with it for it to end.
        let stopper = async {
            if let Some(d) = stop_after {
                tokio::time::sleep(d).await;
                stop.notify_one();
            }
            std::future::pending::<()>().await;
        };
        let exit = tokio::select! {
            e = ProcessRunner.run(&args, Path::new("."), tx, &stop) => e.unwrap(),
            () = stopper => unreachable!("the stopper never ends"),
        };
        let mut lines = Vec::new();
        while let Ok(l) = rx.try_recv() {
            lines.push(l);
        }
        (exit, lines)
    }

    #[tokio::test]
    async fn a_process_streams_both_outputs_and_its_status() {
        let (exit, lines) = run(&["sh", "-c", "echo one; echo two >&2; exit 3"], None).await;
        assert_eq!(exit, Exit::Failed("status 3".into()));
        let mut sorted = lines.clone();
        sorted.sort();
        assert_eq!(sorted, ["one", "two"]);
        let (exit, lines) = run(&["sh", "-c", "echo fine"], None).await;
        assert_eq!((exit, lines), (Exit::Success, vec!["fine".to_owned()]));
    }

    #[tokio::test]
    async fn stopping_kills_what_the_command_started() {
        // The shell's child would outlive the shell; stopping kills the whole group.
        let (exit, lines) = run(
            &["sh", "-c", "sleep 30 & echo $!; wait"],
            Some(Duration::from_millis(300)),
        )
        .await;
        assert_eq!(exit, Exit::Stopped);
        let pid = lines.first().expect("the shell printed its child's pid");
        let stat = format!("/proc/{pid}/stat");
        // Killed, it is gone once reaped (or a zombie until then); alive, it sleeps ('S').
        let mut alive = true;
        for _ in 0..50 {
            alive = std::fs::read_to_string(&stat).is_ok_and(|s| !s.contains(") Z "));
            if !alive {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(!alive, "process {pid} outlived the stop");
    }

    #[tokio::test]
    async fn a_missing_program_is_an_infrastructure_error() {
        let (tx, _rx) = mpsc::channel(1);
        let e = ProcessRunner
            .run(
                &["no-such-program-berth".to_owned()],
                Path::new("."),
                tx,
                &Notify::new(),
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("could not run no-such-program-berth"), "{e}");
    }
}
