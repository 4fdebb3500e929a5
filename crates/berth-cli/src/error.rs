//! The CLI's error type and how each kind is printed and turned into an exit status, the
//! way the docker CLI does: daemon errors as `Error response from daemon: MESSAGE` (exit 1,
//! or 125 under `run`/`create`), a container's own exit status passed through silently.

use crate::format::template::TemplateError;
use crate::opts::OptsError;

/// Everything a command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// From the daemon or the transport.
    #[error(transparent)]
    Client(#[from] berth_client::Error),
    /// A flag value docker would reject.
    #[error(transparent)]
    Opts(#[from] OptsError),
    /// A `--format` template that does not parse or execute.
    #[error("template parsing error: {0}")]
    Template(#[from] TemplateError),
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Free-form message printed as is.
    #[error("{0}")]
    Msg(String),
    /// Several per-object failures already formatted (rm a b c).
    #[error("{}", .0.join("\n"))]
    Many(Vec<String>),
    /// Exit with this status and print nothing (the container's exit code).
    #[error("exit status {0}")]
    Exit(i32),
}

impl CliError {
    /// The text docker prints for this error.
    pub fn render(&self) -> String {
        match self {
            CliError::Client(e @ berth_client::Error::Api { .. }) => {
                format!("Error response from daemon: {e}")
            }
            other => other.to_string(),
        }
    }
}

/// Docker's exit status for a failed `start` under `run`, chosen by the daemon's message.
pub fn start_error_status(message: &str) -> i32 {
    if message.contains("executable file not found")
        || message.contains("no such file or directory")
        || message.contains("system cannot find the file specified")
    {
        127
    } else if message.contains("permission denied") || message.contains("is a directory") {
        126
    } else {
        125
    }
}

/// Result of a command.
pub type CliResult<T = ()> = Result<T, CliError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_by_message() {
        assert_eq!(
            start_error_status("exec: \"nope\": executable file not found in $PATH"),
            127
        );
        assert_eq!(
            start_error_status("open /x: no such file or directory"),
            127
        );
        assert_eq!(start_error_status("exec /etc: permission denied"), 126);
        assert_eq!(start_error_status("cgroup failure"), 125);
    }

    #[test]
    fn daemon_errors_get_docker_prefix() {
        let e = CliError::Client(berth_client::Error::Api {
            status: 404,
            message: "No such container: x".into(),
        });
        assert_eq!(
            e.render(),
            "Error response from daemon: No such container: x"
        );
    }
}
