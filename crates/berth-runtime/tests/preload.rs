//! Pre-started runtime processes (berth_runtime::preload), tried on /bin/sh: any
//! dynamically linked glibc program behaves as crun does here.
use berth_runtime::preload::{available, PreloadedRuntime};
use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

fn sh() -> &'static Path {
    Path::new("/bin/sh")
}

/// Runs `script` in a pre-started sh (in `cwd`) and returns its exit code and stdout.
fn run_in(pre: PreloadedRuntime, cwd: &Path, script: &str) -> (i32, String) {
    let (r, w) = nix::unistd::pipe().expect("pipe");
    let null = OwnedFd::from(std::fs::File::open("/dev/null").expect("null"));
    let err = OwnedFd::from(
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .expect("null"),
    );
    let args = [OsString::from("-c"), OsString::from(script)];
    let status = pre
        .run(cwd, &args, [null.as_fd(), w.as_fd(), err.as_fd()])
        .expect("the process takes its command")
        .expect("wait");
    drop(w);
    let mut out = String::new();
    std::fs::File::from(r)
        .read_to_string(&mut out)
        .expect("read stdout");
    (status.code().unwrap_or(-1), out)
}

#[test]
fn a_preloaded_program_runs_its_command_as_if_started_with_it() {
    assert!(available(), "the build embeds the preload library");
    let pre = PreloadedRuntime::spawn(sh(), OsStr::new("sh")).expect("spawn");
    // Give the loader time to finish, as a spare has: the command may come at any time.
    std::thread::sleep(Duration::from_millis(50));
    let (code, out) = run_in(
        pre,
        Path::new("/tmp"),
        "echo \"$0 $1\"; pwd; env | grep -c -e LD_PRELOAD -e BERTH_PRELOAD; exit 7",
    );
    assert_eq!(code, 7, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.first(),
        Some(&"sh "),
        "argv[0] is the name it was started with: {out}"
    );
    assert_eq!(lines.get(1), Some(&"/tmp"), "working directory: {out}");
    assert_eq!(
        lines.get(2),
        Some(&"0"),
        "the preload's variables are gone: {out}"
    );
}

#[test]
fn a_command_sent_at_once_waits_for_the_loader() {
    let pre = PreloadedRuntime::spawn(sh(), OsStr::new("sh")).expect("spawn");
    let (code, out) = run_in(pre, Path::new("/"), "echo now");
    assert_eq!((code, out.as_str()), (0, "now\n"));
}

#[test]
fn a_process_started_at_nice_19_runs_its_command_at_0() {
    // The spawning thread's nice value is inherited, as a spare shim's is.
    let tid = nix::unistd::gettid().as_raw() as libc::id_t;
    // SAFETY: getpriority/setpriority on this thread; no memory is passed.
    let old = unsafe { libc::getpriority(libc::PRIO_PROCESS, tid) };
    unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, 19) };
    let pre = PreloadedRuntime::spawn(sh(), OsStr::new("sh"));
    unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, old) };
    let pre = pre.expect("spawn");
    // SAFETY: as above, on the child's pid.
    let waiting = unsafe { libc::getpriority(libc::PRIO_PROCESS, pre.id()) };
    assert_eq!(waiting, 19, "it waits at the spawner's nice value");
    let (_, out) = run_in(pre, Path::new("/"), "nice");
    assert_eq!(out.trim(), "0");
}

#[test]
fn an_unused_process_exits_when_dropped_and_a_dead_one_is_refused() {
    let pre = PreloadedRuntime::spawn(sh(), OsStr::new("sh")).expect("spawn");
    let pid = pre.id() as i32;
    drop(pre);
    // Reaped by the drop: no process, not even a zombie, has that pid now.
    assert!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err(),
        "dropped process {pid} still there"
    );
    // Killed while waiting: the command is refused, and the caller runs it another way.
    let pre = PreloadedRuntime::spawn(sh(), OsStr::new("sh")).expect("spawn");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pre.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    std::thread::sleep(Duration::from_millis(50));
    let null = OwnedFd::from(std::fs::File::open("/dev/null").expect("null"));
    let res = pre.run(
        Path::new("/"),
        &[OsString::from("-c"), OsString::from("true")],
        [null.as_fd(), null.as_fd(), null.as_fd()],
    );
    assert!(res.is_none(), "a dead process cannot take a command");
}
