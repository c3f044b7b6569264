//! The one error type of the crate. Every message names the object (an
//! option as the user typed it, the image config, a user name), what is wrong
//! with it, and what to do instead, so `hullctl run` can print it as it is.

/// Why a config.json could not be generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// A run option (`what` is its flag, e.g. `--volume`, or the kind of
    /// value, e.g. `size`) cannot be used as given.
    #[error("{what} {value:?}: {problem}")]
    Invalid {
        what: &'static str,
        value: String,
        problem: String,
    },
    /// The image's config JSON cannot be read.
    #[error("image config: {0}")]
    ImageConfig(String),
    /// A user or group (from `--user`, `--group-add` or the image's USER)
    /// cannot be resolved against the image's /etc/passwd and /etc/group.
    #[error("{origin} {user:?}: {problem}")]
    User {
        origin: &'static str,
        user: String,
        problem: String,
    },
    /// Neither the image nor the options give a program to run.
    #[error(
        "no command specified: the image has no Entrypoint or Cmd; \
         give the command after the image name (e.g. `hullctl run IMAGE sh`) or use --entrypoint"
    )]
    NoCommand,
    /// Something read from the host for the caller ([`crate::host_devices`],
    /// [`crate::current_capabilities`]) cannot be read.
    #[error("reading {path} on the host: {problem}")]
    Host { path: String, problem: String },
    /// A bug in this crate (e.g. an embedded profile that does not parse).
    #[error("internal error while generating config.json: {0}; this is a bug in hull-spec, please report it")]
    Internal(String),
}

impl SpecError {
    pub(crate) fn invalid(
        what: &'static str,
        value: impl Into<String>,
        problem: impl Into<String>,
    ) -> SpecError {
        SpecError::Invalid {
            what,
            value: value.into(),
            problem: problem.into(),
        }
    }
}
