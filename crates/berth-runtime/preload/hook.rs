//! The preload library of a pre-started runtime process (see `berth_runtime::preload`).
//!
//! Loaded with `LD_PRELOAD` into a runtime started before its command is known, it stands
//! in for glibc's `__libc_start_main`, which the program's `_start` calls once the dynamic
//! loader has mapped and relocated every library: the costly part of starting crun (about
//! 2 ms here, ten libraries bound at load). It then waits on fd 0, a socket, for the
//! command: one message with the working directory and the arguments (each ended by NUL)
//! and three descriptors for stdin, stdout and stderr. It puts those in place, restores
//! nice 0 (the process was started at 19), forgets its own environment variables and
//! calls the real `__libc_start_main` with the new arguments, so `main` runs as if the
//! process had been started with them. Without `BERTH_PRELOAD_JOB` in the environment it
//! does nothing but call through. EOF on the socket means the process is not needed: it
//! exits 0.
//!
//! It is built by berth-runtime's build script with rustc alone (no crates, no std) and
//! embedded in the shim, which hands it to the runtime as a sealed memfd.
#![no_std]

use core::ffi::{c_char, c_int, c_void};

type MainFn = unsafe extern "C" fn(c_int, *mut *mut c_char, *mut *mut c_char) -> c_int;
type StartMain = unsafe extern "C" fn(
    MainFn,
    c_int,
    *mut *mut c_char,
    *mut c_void,
    *mut c_void,
    *mut c_void,
    *mut c_void,
) -> c_int;

#[repr(C)]
struct IoVec {
    base: *mut c_void,
    len: usize,
}

#[repr(C)]
struct MsgHdr {
    name: *mut c_void,
    namelen: u32,
    iov: *mut IoVec,
    iovlen: usize,
    control: *mut c_void,
    controllen: usize,
    flags: c_int,
}

#[repr(C)]
struct CmsgHdr {
    len: usize,
    level: c_int,
    kind: c_int,
}

const RTLD_NEXT: *mut c_void = -1isize as *mut c_void;
const SOL_SOCKET: c_int = 1;
const SCM_RIGHTS: c_int = 1;
const MSG_CMSG_CLOEXEC: c_int = 0x4000_0000;
const PRIO_PROCESS: c_int = 0;

#[link(name = "c")]
extern "C" {
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
    fn getenv(name: *const c_char) -> *mut c_char;
    fn unsetenv(name: *const c_char) -> c_int;
    fn recvmsg(fd: c_int, msg: *mut MsgHdr, flags: c_int) -> isize;
    fn dup2(old: c_int, new: c_int) -> c_int;
    fn close(fd: c_int) -> c_int;
    fn chdir(path: *const c_char) -> c_int;
    fn setpriority(which: c_int, who: u32, prio: c_int) -> c_int;
    fn _exit(code: c_int) -> !;
    static mut environ: *mut *mut c_char;
}

const MAX_MSG: usize = 1 << 16;
const MAX_ARGS: usize = 2048;
static mut MSG: [u8; MAX_MSG] = [0; MAX_MSG];
// The arguments, a NULL, the environment and a NULL: `__libc_start_main` finds the
// environment right after the arguments.
static mut ARGV: [*mut c_char; MAX_ARGS] = [core::ptr::null_mut(); MAX_ARGS];
// Room for a cmsghdr and three ints, aligned as the kernel wants.
static mut CONTROL: [u64; 8] = [0; 8];

/// Exit status for a command this library could not put in place (the shim reports it).
const BAD_JOB: c_int = 125;

/// # Safety
/// Called once by the program's `_start`, with the arguments glibc's own takes.
#[no_mangle]
pub unsafe extern "C" fn __libc_start_main(
    main: MainFn,
    argc: c_int,
    argv: *mut *mut c_char,
    init: *mut c_void,
    fini: *mut c_void,
    rtld_fini: *mut c_void,
    stack_end: *mut c_void,
) -> c_int {
    let real = dlsym(RTLD_NEXT, c"__libc_start_main".as_ptr());
    if real.is_null() {
        _exit(BAD_JOB);
    }
    let real: StartMain = core::mem::transmute::<*mut c_void, StartMain>(real);
    if getenv(c"BERTH_PRELOAD_JOB".as_ptr()).is_null() {
        return real(main, argc, argv, init, fini, rtld_fini, stack_end);
    }
    unsetenv(c"BERTH_PRELOAD_JOB".as_ptr());
    unsetenv(c"LD_PRELOAD".as_ptr());
    let msg = &raw mut MSG;
    let control = &raw mut CONTROL;
    let mut iov = IoVec {
        base: msg.cast(),
        len: MAX_MSG - 1,
    };
    let mut hdr = MsgHdr {
        name: core::ptr::null_mut(),
        namelen: 0,
        iov: &mut iov,
        iovlen: 1,
        control: control.cast(),
        controllen: core::mem::size_of::<[u64; 8]>(),
        flags: 0,
    };
    let n = recvmsg(0, &mut hdr, MSG_CMSG_CLOEXEC);
    if n <= 0 {
        // Not needed after all (EOF), or the shim is gone.
        _exit(0);
    }
    let n = n as usize;
    let cm = control.cast::<CmsgHdr>();
    let want = core::mem::size_of::<CmsgHdr>() + 3 * core::mem::size_of::<c_int>();
    if hdr.controllen < want || (*cm).level != SOL_SOCKET || (*cm).kind != SCM_RIGHTS || (*cm).len != want {
        _exit(BAD_JOB);
    }
    let fds = cm.add(1).cast::<c_int>();
    for i in 0..3 {
        let fd = *fds.add(i);
        // dup2 leaves the new descriptor inheritable; over fd 0 it closes the socket.
        if dup2(fd, i as c_int) < 0 {
            _exit(BAD_JOB);
        }
        close(fd);
    }
    setpriority(PRIO_PROCESS, 0, 0);
    // cwd NUL arg0 NUL arg1 NUL ...
    let bytes = msg.cast::<u8>();
    *bytes.add(n) = 0;
    if n == 0 || *bytes.add(n - 1) != 0 {
        _exit(BAD_JOB);
    }
    let argv_out = &raw mut ARGV;
    let slots = argv_out.cast::<*mut c_char>();
    let mut count = 0usize;
    let mut start = 0usize;
    let mut first = true;
    for i in 0..n {
        if *bytes.add(i) != 0 {
            continue;
        }
        let s = bytes.add(start).cast::<c_char>();
        if first {
            if chdir(s) != 0 {
                _exit(BAD_JOB);
            }
            first = false;
        } else {
            if count + 1 >= MAX_ARGS {
                _exit(BAD_JOB);
            }
            *slots.add(count) = s;
            count += 1;
        }
        start = i + 1;
    }
    if count == 0 {
        _exit(BAD_JOB);
    }
    let mut k = count;
    *slots.add(k) = core::ptr::null_mut();
    k += 1;
    let mut e = environ;
    while !e.is_null() && !(*e).is_null() {
        if k + 1 >= MAX_ARGS {
            _exit(BAD_JOB);
        }
        *slots.add(k) = *e;
        k += 1;
        e = e.add(1);
    }
    *slots.add(k) = core::ptr::null_mut();
    real(main, count as c_int, slots, init, fini, rtld_fini, stack_end)
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // SAFETY: _exit never returns and touches no memory of ours.
    unsafe { _exit(BAD_JOB) }
}
