//! The architectures a filter can cover, and what differs between them:
//! audit value, argument width, endianness, syscall numbering, and whether
//! socket/IPC calls are also reachable through a multiplexer syscall.
//!
//! The numbers come from the generated `tables` module so that they agree
//! with libseccomp, the reference our differential test compares against.

use crate::tables;

/// An architecture whose syscalls a filter can recognise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Arch {
    X86_64,
    X86,
    X32,
    Aarch64,
    Arm,
    Riscv64,
    S390x,
    Ppc64le,
}

/// `__X32_SYSCALL_BIT`: x32 shares x86_64's audit value and is told apart
/// by this bit in the syscall number.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Multiplexer syscall numbers (`socketcall`, `ipc`) on the architectures
/// that have them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Multiplexers {
    pub socketcall: u32,
    pub ipc: u32,
}

impl Arch {
    pub const ALL: [Arch; 8] = [
        Arch::X86_64,
        Arch::X86,
        Arch::X32,
        Arch::Aarch64,
        Arch::Arm,
        Arch::Riscv64,
        Arch::S390x,
        Arch::Ppc64le,
    ];

    /// The architecture this crate was compiled for, if we have tables for it.
    pub fn native() -> Option<Arch> {
        match std::env::consts::ARCH {
            "x86_64" => Some(Arch::X86_64),
            "x86" => Some(Arch::X86),
            "aarch64" => Some(Arch::Aarch64),
            "arm" => Some(Arch::Arm),
            "riscv64" => Some(Arch::Riscv64),
            "s390x" => Some(Arch::S390x),
            "powerpc64" if cfg!(target_endian = "little") => Some(Arch::Ppc64le),
            _ => None,
        }
    }

    /// Maps the OCI `SCMP_ARCH_*` name; `None` for architectures we have no
    /// tables for (and for `SCMP_ARCH_NATIVE`, which the caller resolves).
    pub fn from_oci(arch: oci_spec::runtime::Arch) -> Option<Arch> {
        use oci_spec::runtime::Arch as O;
        match arch {
            O::ScmpArchX86_64 => Some(Arch::X86_64),
            O::ScmpArchX86 => Some(Arch::X86),
            O::ScmpArchX32 => Some(Arch::X32),
            O::ScmpArchAarch64 => Some(Arch::Aarch64),
            O::ScmpArchArm => Some(Arch::Arm),
            O::ScmpArchRiscv64 => Some(Arch::Riscv64),
            O::ScmpArchS390x => Some(Arch::S390x),
            O::ScmpArchPpc64le => Some(Arch::Ppc64le),
            _ => None,
        }
    }

    /// The value the kernel puts in `seccomp_data.arch` (AUDIT_ARCH_*).
    pub fn audit_arch(self) -> u32 {
        match self {
            Arch::X86_64 | Arch::X32 => 0xC000_003E,
            Arch::X86 => 0x4000_0003,
            Arch::Aarch64 => 0xC000_00B7,
            Arch::Arm => 0x4000_0028,
            Arch::Riscv64 => 0xC000_00F3,
            Arch::S390x => 0x8000_0016,
            Arch::Ppc64le => 0xC000_0015,
        }
    }

    /// Whether syscall arguments are 64 bits wide. Like libseccomp we treat
    /// x32 as a 32-bit ABI: only the low word of each argument is compared.
    pub fn has_64bit_args(self) -> bool {
        !matches!(self, Arch::X86 | Arch::X32 | Arch::Arm)
    }

    pub fn is_big_endian(self) -> bool {
        matches!(self, Arch::S390x)
    }

    /// `seccomp_data` offset of the low word of argument `index`.
    pub fn arg_lo_offset(self, index: u8) -> u32 {
        let base = 16 + 8 * u32::from(index);
        if self.is_big_endian() {
            base + 4
        } else {
            base
        }
    }

    /// `seccomp_data` offset of the high word of argument `index`.
    pub fn arg_hi_offset(self, index: u8) -> u32 {
        let base = 16 + 8 * u32::from(index);
        if self.is_big_endian() {
            base
        } else {
            base + 4
        }
    }

    pub(crate) fn multiplexers(self) -> Option<Multiplexers> {
        match self {
            Arch::X86 | Arch::S390x | Arch::Ppc64le => Some(Multiplexers {
                socketcall: 102,
                ipc: 117,
            }),
            _ => None,
        }
    }

    fn table(self) -> &'static [(&'static str, u32)] {
        match self {
            Arch::X86_64 => tables::X86_64,
            Arch::X86 => tables::X86,
            Arch::X32 => tables::X32,
            Arch::Aarch64 => tables::AARCH64,
            Arch::Arm => tables::ARM,
            Arch::Riscv64 => tables::RISCV64,
            Arch::S390x => tables::S390X,
            Arch::Ppc64le => tables::PPC64LE,
        }
    }

    /// The syscall number of `name` on this architecture, if it exists here.
    pub fn syscall_nr(self, name: &str) -> Option<u32> {
        let table = self.table();
        table
            .binary_search_by(|(n, _)| (*n).cmp(name))
            .ok()
            .map(|i| table[i].1)
    }
}

/// Which multiplexer reaches a syscall, and with which call number in
/// argument 0 (the `SYS_*` values of linux/net.h and the IPC call numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Muxed {
    Socket(u32),
    Ipc(u32),
}

const SOCKET_CALLS: [&str; 20] = [
    "socket",
    "bind",
    "connect",
    "listen",
    "accept",
    "getsockname",
    "getpeername",
    "socketpair",
    "send",
    "recv",
    "sendto",
    "recvfrom",
    "shutdown",
    "setsockopt",
    "getsockopt",
    "sendmsg",
    "recvmsg",
    "accept4",
    "recvmmsg",
    "sendmmsg",
];

const IPC_CALLS: [(&str, u32); 12] = [
    ("semop", 1),
    ("semget", 2),
    ("semctl", 3),
    ("semtimedop", 4),
    ("msgsnd", 11),
    ("msgrcv", 12),
    ("msgget", 13),
    ("msgctl", 14),
    ("shmat", 21),
    ("shmdt", 22),
    ("shmget", 23),
    ("shmctl", 24),
];

/// The multiplexed form of `name`, if it has one.
pub(crate) fn muxed(name: &str) -> Option<Muxed> {
    if let Some(i) = SOCKET_CALLS.iter().position(|n| *n == name) {
        return Some(Muxed::Socket(i as u32 + 1));
    }
    IPC_CALLS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, call)| Muxed::Ipc(*call))
}

/// Whether any architecture (directly or through a multiplexer) knows `name`.
pub fn is_known_syscall(name: &str) -> bool {
    muxed(name).is_some() || Arch::ALL.iter().any(|a| a.syscall_nr(name).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_resolve_per_arch() {
        assert_eq!(Arch::X86_64.syscall_nr("read"), Some(0));
        assert_eq!(Arch::X86.syscall_nr("read"), Some(3));
        assert_eq!(Arch::X32.syscall_nr("read"), Some(X32_SYSCALL_BIT));
        assert_eq!(Arch::Aarch64.syscall_nr("openat"), Some(56));
        assert_eq!(Arch::Aarch64.syscall_nr("open"), None);
        assert_eq!(Arch::Arm.syscall_nr("cacheflush"), Some(0x0f0002));
        assert_eq!(Arch::X86.syscall_nr("socketcall"), Some(102));
    }

    #[test]
    fn multiplexed_call_numbers() {
        assert_eq!(muxed("socket"), Some(Muxed::Socket(1)));
        assert_eq!(muxed("sendmmsg"), Some(Muxed::Socket(20)));
        assert_eq!(muxed("shmget"), Some(Muxed::Ipc(23)));
        assert_eq!(muxed("read"), None);
    }

    #[test]
    fn argument_offsets_follow_endianness() {
        assert_eq!(Arch::X86_64.arg_lo_offset(1), 24);
        assert_eq!(Arch::X86_64.arg_hi_offset(1), 28);
        assert_eq!(Arch::S390x.arg_lo_offset(1), 28);
        assert_eq!(Arch::S390x.arg_hi_offset(1), 24);
    }
}
