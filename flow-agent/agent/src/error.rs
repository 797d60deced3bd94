//! Errors of loading, attaching and reading the flow probe.

use std::{io, path::PathBuf};

use aya::{EbpfError, maps::MapError, programs::ProgramError};

/// Why the flow probe could not start or deliver records.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The embedded BPF object could not be parsed or its maps created.
    #[error("loading the flow BPF object failed")]
    Object(#[source] EbpfError),
    /// The programs' kfunc calls could not be linked (a build mismatch).
    #[error("linking the flow BPF object's kernel function calls failed")]
    Kfunc(#[from] crate::kfunc::KfuncError),
    /// tracefs was not mounted and mounting it failed.
    #[error("tracefs is not mounted and mounting it at {path} failed")]
    Tracefs {
        /// Where the mount was attempted.
        path: PathBuf,
        /// The mount error.
        #[source]
        source: io::Error,
    },
    /// A tracepoint's `format` description could not be read (tracepoint missing?).
    #[error("cannot read the format of tracepoint {tracepoint} at {path}")]
    TracepointFormat {
        /// `category/name`.
        tracepoint: String,
        /// The `format` file.
        path: PathBuf,
        /// The read error.
        #[source]
        source: io::Error,
    },
    /// The kernel lays out a tracepoint record differently than the programs assume.
    #[error(
        "tracepoint {tracepoint}: field `{field}` is at (offset, size) {found:?} in this kernel, the program expects {expected:?}"
    )]
    TracepointLayout {
        /// `category/name`.
        tracepoint: String,
        /// The field that moved.
        field: &'static str,
        /// (offset, size) the program reads.
        expected: (usize, usize),
        /// (offset, size) in the kernel, `None` if the field is absent.
        found: Option<(usize, usize)>,
    },
    /// A program named by the loader is not in the object (a build mismatch).
    #[error("program `{program}` is missing from the BPF object")]
    MissingProgram {
        /// The program's name.
        program: &'static str,
    },
    /// The verifier or the kernel refused to load a program.
    #[error("loading program `{program}` failed")]
    Load {
        /// The program's name.
        program: &'static str,
        /// aya's error, with the verifier log when there is one.
        #[source]
        source: ProgramError,
    },
    /// A loaded program could not be attached to its hook.
    #[error("attaching program `{program}` to {hook} failed")]
    Attach {
        /// The program's name.
        program: &'static str,
        /// The hook, e.g. `tracepoint sock/inet_sock_set_state`.
        hook: String,
        /// aya's error.
        #[source]
        source: ProgramError,
    },
    /// The `sock_diag` sweep failed.
    #[error("reading the host's TCP sockets through sock_diag failed")]
    SockDiag(#[source] crate::sock_diag::SockDiagError),
    /// The cgroup v2 hierarchy's root could not be found or opened.
    #[error("cannot open the root of the cgroup v2 hierarchy")]
    Cgroup {
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A map named by the loader is not in the object (a build mismatch).
    #[error("map `{map}` is missing from the BPF object")]
    MissingMap {
        /// The map's name.
        map: &'static str,
    },
    /// A map could not be opened, read or written.
    #[error("map `{map}` failed")]
    Map {
        /// The map's name.
        map: &'static str,
        /// aya's error.
        #[source]
        source: MapError,
    },
    /// Waiting on the ring buffer's file descriptor failed.
    #[error("polling the flow ring buffer failed")]
    Poll(#[source] io::Error),
    /// Running the interim sweep program failed.
    #[error("running the interim sweep program failed")]
    Sweep(#[source] ProgramError),
    /// Waiting for running BPF programs to finish (before reading an aggregate map)
    /// failed.
    #[error("waiting for the flow programs to leave the aggregate map failed")]
    Barrier(#[source] io::Error),
    /// Turning on the kernel's BPF run time statistics failed.
    #[error("enabling BPF run time statistics failed")]
    Stats(#[source] aya::sys::SyscallError),
}

impl ProbeError {
    /// Whether the kernel refused BPF for lack of privilege (`EPERM`/`EACCES` from a
    /// `bpf()` call): the one failure callers may treat as "BPF unavailable here".
    ///
    /// A program the verifier rejected is not that, although the kernel says `EACCES`
    /// for it too: it comes with the verifier's log, and it is a bug to report.
    pub fn is_permission_denied(&self) -> bool {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(err) = source {
            if let Some(ProgramError::LoadError { verifier_log, .. }) =
                err.downcast_ref::<ProgramError>()
                && !verifier_log.to_string().trim().is_empty()
            {
                return false;
            }
            if let Some(io) = err.downcast_ref::<io::Error>()
                && matches!(io.raw_os_error(), Some(libc::EPERM | libc::EACCES))
            {
                // tracefs mount failures are not about BPF privileges.
                return !matches!(self, Self::Tracefs { .. } | Self::TracepointFormat { .. });
            }
            source = err.source();
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eperm_from_a_program_load_counts_as_permission_denied() {
        let err = ProbeError::Load {
            program: "p",
            source: ProgramError::SyscallError(aya::sys::SyscallError {
                call: "bpf_prog_load",
                io_error: io::Error::from_raw_os_error(libc::EPERM),
            }),
        };
        assert!(err.is_permission_denied());
    }

    #[test]
    fn a_verifier_rejection_is_not_permission_denied() {
        let err = ProbeError::Load {
            program: "p",
            source: ProgramError::LoadError {
                io_error: io::Error::from_raw_os_error(libc::EACCES),
                verifier_log: aya_obj::VerifierLog::new(
                    "R2 unbounded memory access, use 'var &= const'".into(),
                ),
            },
        };
        assert!(!err.is_permission_denied());
    }

    #[test]
    fn other_errors_are_not_permission_denied() {
        let err = ProbeError::Load {
            program: "p",
            source: ProgramError::SyscallError(aya::sys::SyscallError {
                call: "bpf_prog_load",
                io_error: io::Error::from_raw_os_error(libc::EINVAL),
            }),
        };
        assert!(!err.is_permission_denied());
        let err = ProbeError::Tracefs {
            path: PathBuf::from("/x"),
            source: io::Error::from_raw_os_error(libc::EPERM),
        };
        assert!(!err.is_permission_denied());
        assert!(!ProbeError::MissingMap { map: "m" }.is_permission_denied());
    }
}
