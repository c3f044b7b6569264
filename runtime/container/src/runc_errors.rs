//! runc's error words that clients match. Hull's messages say more (the
//! container, what to do), but keep these phrases verbatim: containerd's
//! shim treats a `kill` failing with "container not running" as "already
//! exited" (anything else leaves CRI pods that can be neither stopped nor
//! removed), and containerd and podman take "does not exist" as "gone".

/// A container id with no state (runc's ErrNotExist).
pub const NOT_EXIST: &str = "container does not exist";
/// create with an id in use (runc's ErrExist).
pub const EXIST: &str = "container with given ID already exists";
/// An id runc refuses (runc's ErrInvalidID).
pub const INVALID_ID: &str = "invalid container ID format";
/// kill, pause, update of a container whose init is gone (runc's ErrNotRunning).
pub const NOT_RUNNING: &str = "container not running";
/// resume of a container that is not paused (runc's ErrNotPaused).
pub const NOT_PAUSED: &str = "container not paused";
