//! Typed errors that carry their exit code, so `main` maps an error to a
//! process status in exactly one place and every message reads the same way.

/// What went wrong, as far as a script reading the exit status cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A bug: something the program believed could not happen.
    Internal,
    /// Bad flag, date, file or missing key; nothing was sent.
    Usage,
    /// The vendor refused the key (401/403).
    Auth,
    /// The agent, chatbot or project does not exist (404).
    NotFound,
    /// 5xx/429 after retries, a body of the wrong shape, a pagination loop.
    Vendor,
    /// DNS, connect, TLS or timeout after retries.
    Network,
    /// Output or state file not writable, state locked.
    LocalFile,
    /// Ctrl-C.
    Interrupted,
    /// SIGTERM (`timeout`, systemd, `kill`).
    Terminated,
    /// SIGHUP (the terminal went away).
    HungUp,
    /// Whoever read stdout went away (`| head`): a quiet success.
    OutputClosed,
}

impl ErrorKind {
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::Internal => 1,
            ErrorKind::Usage => 2,
            ErrorKind::Auth => 3,
            ErrorKind::NotFound => 4,
            ErrorKind::Vendor => 5,
            ErrorKind::Network => 6,
            ErrorKind::LocalFile => 7,
            ErrorKind::Interrupted => 130,
            ErrorKind::Terminated => 143,
            ErrorKind::HungUp => 129,
            ErrorKind::OutputClosed => 0,
        }
    }
}

/// One error, one line: `message`, optionally followed by a `hint:` line.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    pub hint: Option<String>,
    /// The HTTP status that caused it, when there was one (the Chatzuri 405
    /// fallback and the tests look at it).
    pub status: Option<u16>,
    /// The vendor's own error code from the body (`SUBSCRIPTION_...`), when
    /// it sent one: plans pick a fallback by it.
    pub vendor_code: Option<String>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            hint: None,
            status: None,
            vendor_code: None,
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Usage, message)
    }

    pub fn vendor(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Vendor, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    pub fn local_file(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::LocalFile, message)
    }

    pub fn interrupted() -> Self {
        Self::new(ErrorKind::Interrupted, "interrupted")
    }

    pub fn terminated() -> Self {
        Self::new(ErrorKind::Terminated, "terminated (SIGTERM)")
    }

    pub fn hung_up() -> Self {
        Self::new(ErrorKind::HungUp, "hung up (SIGHUP)")
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
