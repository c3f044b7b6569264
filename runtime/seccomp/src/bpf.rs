//! Classic BPF as the kernel's seccomp filter engine sees it: the instruction
//! type we emit, the `seccomp_data` it reads, and a small interpreter.
//!
//! The interpreter exists so that compiled programs can be *executed* in
//! tests (ours and the differential test against libseccomp) without loading
//! them into a kernel: two filters are equivalent exactly when they return
//! the same value for every `seccomp_data`, and running them is the only
//! honest way to check that.

/// One classic BPF instruction, laid out exactly like the kernel's
/// `struct sock_filter` so a slice of them can be handed to `seccomp(2)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

impl Insn {
    /// A non-jumping instruction.
    pub const fn stmt(code: u16, k: u32) -> Self {
        Self {
            code,
            jt: 0,
            jf: 0,
            k,
        }
    }

    /// A conditional jump with relative offsets.
    pub const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Self {
        Self { code, jt, jf, k }
    }
}

// Opcode pieces (linux/bpf_common.h); only what seccomp programs use.
pub const BPF_LD: u16 = 0x00;
pub const BPF_LDX: u16 = 0x01;
pub const BPF_ST: u16 = 0x02;
pub const BPF_STX: u16 = 0x03;
pub const BPF_ALU: u16 = 0x04;
pub const BPF_JMP: u16 = 0x05;
pub const BPF_RET: u16 = 0x06;
pub const BPF_MISC: u16 = 0x07;
pub const BPF_W: u16 = 0x00;
pub const BPF_ABS: u16 = 0x20;
pub const BPF_IMM: u16 = 0x00;
pub const BPF_MEM: u16 = 0x60;
pub const BPF_LEN: u16 = 0x80;
pub const BPF_ADD: u16 = 0x00;
pub const BPF_SUB: u16 = 0x10;
pub const BPF_MUL: u16 = 0x20;
pub const BPF_DIV: u16 = 0x30;
pub const BPF_OR: u16 = 0x40;
pub const BPF_AND: u16 = 0x50;
pub const BPF_LSH: u16 = 0x60;
pub const BPF_RSH: u16 = 0x70;
pub const BPF_NEG: u16 = 0x80;
pub const BPF_MOD: u16 = 0x90;
pub const BPF_XOR: u16 = 0xa0;
pub const BPF_JA: u16 = 0x00;
pub const BPF_JEQ: u16 = 0x10;
pub const BPF_JGT: u16 = 0x20;
pub const BPF_JGE: u16 = 0x30;
pub const BPF_JSET: u16 = 0x40;
pub const BPF_K: u16 = 0x00;
pub const BPF_X: u16 = 0x08;
pub const BPF_A: u16 = 0x10;
pub const BPF_TAX: u16 = 0x00;
pub const BPF_TXA: u16 = 0x80;

/// The kernel's limit on filter length (BPF_MAXINSNS).
pub const MAX_INSNS: usize = 4096;

/// Size of `struct seccomp_data`: the only memory a filter can read.
pub const SECCOMP_DATA_LEN: usize = 64;

/// What the kernel hands a seccomp filter for one syscall.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeccompData {
    pub nr: i32,
    pub arch: u32,
    pub instruction_pointer: u64,
    pub args: [u64; 6],
}

/// `__AUDIT_ARCH_LE`: set in the audit value of little-endian architectures.
const AUDIT_ARCH_LE: u32 = 0x4000_0000;

impl SeccompData {
    /// The struct as the kernel of `self.arch` lays it out in memory.
    ///
    /// Endianness follows the audit value, because a filter only ever runs
    /// on a kernel of the architecture it is checking for: a big-endian
    /// (s390x) block reads the high word of an argument at the low offset.
    pub fn to_bytes(&self) -> [u8; SECCOMP_DATA_LEN] {
        let le = self.is_little_endian();
        let mut out = [0u8; SECCOMP_DATA_LEN];
        put32(&mut out[0..4], self.nr as u32, le);
        put32(&mut out[4..8], self.arch, le);
        put64(&mut out[8..16], self.instruction_pointer, le);
        for (i, arg) in self.args.iter().enumerate() {
            put64(&mut out[16 + 8 * i..24 + 8 * i], *arg, le);
        }
        out
    }

    fn is_little_endian(&self) -> bool {
        self.arch & AUDIT_ARCH_LE != 0
    }
}

fn put32(dst: &mut [u8], v: u32, le: bool) {
    dst.copy_from_slice(&if le { v.to_le_bytes() } else { v.to_be_bytes() });
}

fn put64(dst: &mut [u8], v: u64, le: bool) {
    dst.copy_from_slice(&if le { v.to_le_bytes() } else { v.to_be_bytes() });
}

/// Why a program is not one the kernel would accept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invalid {
    Empty,
    TooLong(usize),
    JumpOutOfRange(usize),
    BadLoad(usize),
    UnknownOpcode(usize),
    FallsOffEnd,
}

/// Static checks mirroring the kernel's loader: length, in-range jumps,
/// aligned in-bounds loads, known opcodes, and a final `ret`.
pub fn validate(program: &[Insn]) -> Result<(), Invalid> {
    if program.is_empty() {
        return Err(Invalid::Empty);
    }
    if program.len() > MAX_INSNS {
        return Err(Invalid::TooLong(program.len()));
    }
    for (pc, insn) in program.iter().enumerate() {
        validate_insn(program.len(), pc, insn)?;
    }
    match program.last() {
        Some(last) if last.code & 0x07 == BPF_RET => Ok(()),
        _ => Err(Invalid::FallsOffEnd),
    }
}

fn validate_insn(len: usize, pc: usize, insn: &Insn) -> Result<(), Invalid> {
    let code = insn.code;
    match code & 0x07 {
        BPF_JMP => {
            let reach = if code & 0xf0 == BPF_JA {
                insn.k as usize
            } else {
                insn.jt.max(insn.jf) as usize
            };
            if pc + 1 + reach >= len {
                return Err(Invalid::JumpOutOfRange(pc));
            }
        }
        BPF_LD if code == BPF_LD | BPF_W | BPF_ABS => {
            let k = insn.k as usize;
            if !k.is_multiple_of(4) || k + 4 > SECCOMP_DATA_LEN {
                return Err(Invalid::BadLoad(pc));
            }
        }
        BPF_LD | BPF_LDX if code & 0xe0 == BPF_IMM || code & 0xe0 == BPF_MEM => {}
        BPF_LD | BPF_LDX if code & 0xe0 == BPF_LEN => {}
        BPF_ALU | BPF_RET | BPF_MISC | BPF_ST | BPF_STX => {}
        _ => return Err(Invalid::UnknownOpcode(pc)),
    }
    Ok(())
}

/// Runs `program` against `data` and returns the filter's verdict
/// (a `SECCOMP_RET_*` value).
///
/// Programs that [`validate`] would reject, or that fault at run time
/// (division by zero), evaluate to 0, i.e. `SECCOMP_RET_KILL_THREAD`:
/// failing closed is the only safe reading of a broken filter.
pub fn run(program: &[Insn], data: &SeccompData) -> u32 {
    if validate(program).is_err() {
        return 0;
    }
    let bytes = data.to_bytes();
    let mut vm = Vm {
        a: 0,
        x: 0,
        mem: [0; 16],
        le: data.is_little_endian(),
        bytes: &bytes,
    };
    let mut pc = 0usize;
    while let Some(insn) = program.get(pc) {
        match vm.step(insn) {
            Step::Next(skip) => pc += 1 + skip,
            Step::Return(v) => return v,
            Step::Fault => return 0,
        }
    }
    0
}

enum Step {
    Next(usize),
    Return(u32),
    Fault,
}

struct Vm<'a> {
    a: u32,
    x: u32,
    mem: [u32; 16],
    le: bool,
    bytes: &'a [u8; SECCOMP_DATA_LEN],
}

impl Vm<'_> {
    fn step(&mut self, insn: &Insn) -> Step {
        match insn.code & 0x07 {
            BPF_LD => self.load(insn),
            BPF_LDX => self.load_x(insn),
            BPF_ST => self.store(insn.k, self.a),
            BPF_STX => self.store(insn.k, self.x),
            BPF_ALU => self.alu(insn),
            BPF_JMP => self.jump(insn),
            BPF_RET => Step::Return(if insn.code & 0x18 == BPF_A {
                self.a
            } else {
                insn.k
            }),
            _ => self.misc(insn),
        }
    }

    fn word(&self, k: u32) -> Option<u32> {
        let k = k as usize;
        let raw: [u8; 4] = self.bytes.get(k..k + 4)?.try_into().ok()?;
        Some(if self.le {
            u32::from_le_bytes(raw)
        } else {
            u32::from_be_bytes(raw)
        })
    }

    fn load(&mut self, insn: &Insn) -> Step {
        let value = match insn.code & 0xe0 {
            BPF_ABS => self.word(insn.k),
            BPF_IMM => Some(insn.k),
            BPF_MEM => self.mem.get(insn.k as usize).copied(),
            BPF_LEN => Some(SECCOMP_DATA_LEN as u32),
            _ => None,
        };
        match value {
            Some(v) => {
                self.a = v;
                Step::Next(0)
            }
            None => Step::Fault,
        }
    }

    fn load_x(&mut self, insn: &Insn) -> Step {
        let value = match insn.code & 0xe0 {
            BPF_IMM => Some(insn.k),
            BPF_MEM => self.mem.get(insn.k as usize).copied(),
            BPF_LEN => Some(SECCOMP_DATA_LEN as u32),
            _ => None,
        };
        match value {
            Some(v) => {
                self.x = v;
                Step::Next(0)
            }
            None => Step::Fault,
        }
    }

    fn store(&mut self, k: u32, v: u32) -> Step {
        match self.mem.get_mut(k as usize) {
            Some(slot) => {
                *slot = v;
                Step::Next(0)
            }
            None => Step::Fault,
        }
    }

    fn alu(&mut self, insn: &Insn) -> Step {
        let src = if insn.code & BPF_X != 0 {
            self.x
        } else {
            insn.k
        };
        let a = self.a;
        let result = match insn.code & 0xf0 {
            BPF_ADD => Some(a.wrapping_add(src)),
            BPF_SUB => Some(a.wrapping_sub(src)),
            BPF_MUL => Some(a.wrapping_mul(src)),
            BPF_DIV => a.checked_div(src),
            BPF_MOD => a.checked_rem(src),
            BPF_OR => Some(a | src),
            BPF_AND => Some(a & src),
            BPF_XOR => Some(a ^ src),
            BPF_LSH => Some(a.checked_shl(src).unwrap_or(0)),
            BPF_RSH => Some(a.checked_shr(src).unwrap_or(0)),
            BPF_NEG => Some(a.wrapping_neg()),
            _ => None,
        };
        match result {
            Some(v) => {
                self.a = v;
                Step::Next(0)
            }
            None => Step::Fault,
        }
    }

    fn jump(&self, insn: &Insn) -> Step {
        let src = if insn.code & BPF_X != 0 {
            self.x
        } else {
            insn.k
        };
        let taken = match insn.code & 0xf0 {
            BPF_JA => return Step::Next(insn.k as usize),
            BPF_JEQ => self.a == src,
            BPF_JGT => self.a > src,
            BPF_JGE => self.a >= src,
            BPF_JSET => self.a & src != 0,
            _ => return Step::Fault,
        };
        Step::Next(if taken { insn.jt } else { insn.jf } as usize)
    }

    fn misc(&mut self, insn: &Insn) -> Step {
        if insn.code & 0xf8 == BPF_TXA {
            self.a = self.x;
        } else {
            self.x = self.a;
        }
        Step::Next(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(nr: i32, arch: u32, args: [u64; 6]) -> SeccompData {
        SeccompData {
            nr,
            arch,
            instruction_pointer: 0,
            args,
        }
    }

    #[test]
    fn loads_little_endian_argument_halves() {
        let prog = [
            Insn::stmt(BPF_LD | BPF_W | BPF_ABS, 20),
            Insn::stmt(BPF_RET | BPF_A, 0),
        ];
        let d = data(0, 0xC000_003E, [0x1122_3344_5566_7788, 0, 0, 0, 0, 0]);
        assert_eq!(run(&prog, &d), 0x1122_3344);
    }

    #[test]
    fn loads_big_endian_argument_halves() {
        let prog = [
            Insn::stmt(BPF_LD | BPF_W | BPF_ABS, 16),
            Insn::stmt(BPF_RET | BPF_A, 0),
        ];
        let d = data(0, 0x8000_0016, [0x1122_3344_5566_7788, 0, 0, 0, 0, 0]);
        assert_eq!(run(&prog, &d), 0x1122_3344);
    }

    #[test]
    fn jumps_and_alu() {
        let prog = [
            Insn::stmt(BPF_LD | BPF_W | BPF_ABS, 0),
            Insn::stmt(BPF_ALU | BPF_AND | BPF_K, 0xff),
            Insn::jump(BPF_JMP | BPF_JEQ | BPF_K, 7, 0, 1),
            Insn::stmt(BPF_RET | BPF_K, 1),
            Insn::stmt(BPF_JMP | BPF_JA, 1),
            Insn::stmt(BPF_RET | BPF_K, 3),
            Insn::stmt(BPF_RET | BPF_K, 2),
        ];
        assert_eq!(run(&prog, &data(0x107, 0xC000_003E, [0; 6])), 1);
        assert_eq!(run(&prog, &data(8, 0xC000_003E, [0; 6])), 2);
    }

    #[test]
    fn broken_programs_fail_closed() {
        let out_of_range = [Insn::jump(BPF_JMP | BPF_JEQ | BPF_K, 0, 5, 0)];
        assert_eq!(run(&out_of_range, &SeccompData::default()), 0);
        let bad_load = [
            Insn::stmt(BPF_LD | BPF_W | BPF_ABS, 62),
            Insn::stmt(BPF_RET | BPF_K, 9),
        ];
        assert_eq!(validate(&bad_load), Err(Invalid::BadLoad(0)));
        assert_eq!(validate(&[]), Err(Invalid::Empty));
        let no_ret = [Insn::stmt(BPF_LD | BPF_W | BPF_ABS, 0)];
        assert_eq!(validate(&no_ret), Err(Invalid::FallsOffEnd));
    }
}
