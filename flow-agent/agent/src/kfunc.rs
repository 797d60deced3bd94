//! Calls of kernel functions (kfuncs) in the BPF object, made real before it is loaded.
//!
//! aya 0.14 relocates map references and calls between BPF functions, not calls of
//! kfuncs. So the programs call a reserved helper number in a kfunc's place
//! ([`paved_flow_common::kfunc`]) and [`link`] rewrites each such instruction into the
//! call the kernel expects: `src_reg` = `BPF_PSEUDO_KFUNC_CALL`, `imm` = the function's
//! id in the kernel's BTF, `off` = 0 (the function is in vmlinux, not in a module).
//! Only instructions in executable sections are looked at, and only exact matches of
//! the placeholder call are changed; a placeholder left unpatched is refused by the
//! verifier as an unknown helper, never run.

use std::ops::Range;

use object::{Object, ObjectSection, SectionKind};
use paved_flow_common::kfunc;

use crate::btf::Btf;

/// Bytes per BPF instruction.
const INSN_LEN: usize = 8;
/// `BPF_JMP | BPF_CALL`: the opcode of a call.
const CALL: u8 = 0x85;
/// `src_reg` of a call of a kernel function (`BPF_PSEUDO_KFUNC_CALL`).
const PSEUDO_KFUNC_CALL: u8 = 2;
/// The `bpf_features` value that says `bpf_rdonly_cast(ptr, 0)` gives untyped memory.
const RDONLY_CAST_TO_VOID: &str = "BPF_FEAT_RDONLY_CAST_TO_VOID";

/// Why the object could not be linked.
#[derive(Debug, thiserror::Error)]
pub enum KfuncError {
    /// The object is not an ELF file `object` can read.
    #[error("the BPF object cannot be read as ELF")]
    Elf(#[source] object::Error),
    /// No instruction calls the placeholder: the programs and the loader disagree.
    #[error("no call of kfunc placeholder {placeholder:#x} in the BPF object")]
    NotCalled {
        /// The helper number looked for.
        placeholder: i32,
    },
}

/// The kfuncs the running kernel offers the programs, by their BTF ids.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelKfuncs {
    /// `bpf_rdonly_cast`, when it can cast to untyped memory (`btf_id` 0).
    pub rdonly_cast: Option<u32>,
}

impl KernelKfuncs {
    /// Looks the kfuncs up in the kernel's BTF.
    pub fn find(btf: &Btf<'_>) -> Self {
        let rdonly_cast = btf
            .enum_has_value("bpf_features", RDONLY_CAST_TO_VOID)
            .then(|| btf.function(kfunc::RDONLY_CAST_NAME))
            .flatten();
        Self { rdonly_cast }
    }
}

/// A copy of `object` whose calls of helper number `placeholder` call the kfunc with
/// BTF id `btf_id` instead; fails when there is no such call.
pub fn link(object: &[u8], placeholder: i32, btf_id: u32) -> Result<Vec<u8>, KfuncError> {
    let mut linked = object.to_vec();
    let mut patched = 0;
    for range in code_ranges(object)? {
        let Some(code) = linked.get_mut(range) else {
            continue;
        };
        for insn in code.chunks_exact_mut(INSN_LEN) {
            if is_helper_call(insn, placeholder) {
                insn[1] = PSEUDO_KFUNC_CALL << 4;
                insn[4..].copy_from_slice(&btf_id.to_le_bytes());
                patched += 1;
            }
        }
    }
    if patched == 0 {
        return Err(KfuncError::NotCalled { placeholder });
    }
    tracing::debug!(placeholder, btf_id, calls = patched, "kfunc calls linked");
    Ok(linked)
}

/// Where the executable sections of `object` lie in the file.
fn code_ranges(object: &[u8]) -> Result<Vec<Range<usize>>, KfuncError> {
    let file = object::File::parse(object).map_err(KfuncError::Elf)?;
    Ok(file
        .sections()
        .filter(|section| section.kind() == SectionKind::Text)
        .filter_map(|section| {
            let (start, len) = section.file_range()?;
            let start = usize::try_from(start).ok()?;
            Some(start..start.saturating_add(usize::try_from(len).ok()?))
        })
        .collect())
}

/// Whether `insn` is `call <helper>` with the helper number `helper`: the opcode, no
/// registers, no offset (the object is little-endian, as `bpfel` targets are).
fn is_helper_call(insn: &[u8], helper: i32) -> bool {
    insn.len() == INSN_LEN
        && insn[0] == CALL
        && insn[1] == 0
        && insn[2..4] == [0, 0]
        && insn[4..] == helper.to_le_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The instructions of every executable section of `object`, with where they are.
    fn instructions(object: &[u8]) -> Vec<(usize, [u8; INSN_LEN])> {
        let mut found = Vec::new();
        for range in code_ranges(object).expect("the built object is ELF") {
            let start = range.start;
            for (i, insn) in object[range].chunks_exact(INSN_LEN).enumerate() {
                found.push((start + i * INSN_LEN, insn.try_into().expect("8 bytes")));
            }
        }
        found
    }

    #[test]
    fn placeholder_calls_become_kfunc_calls_and_nothing_else_changes() {
        let object = crate::probe::object();
        let btf_id = 0x0001_2345;
        let linked = link(object, kfunc::RDONLY_CAST, btf_id).expect("the object calls the cast");

        let before = instructions(object);
        let placeholders: Vec<usize> = before
            .iter()
            .filter(|(_, insn)| is_helper_call(insn, kfunc::RDONLY_CAST))
            .map(|(at, _)| *at)
            .collect();
        assert!(!placeholders.is_empty());
        for at in &placeholders {
            let insn = &linked[*at..*at + INSN_LEN];
            assert_eq!(insn[0], CALL);
            assert_eq!(insn[1], PSEUDO_KFUNC_CALL << 4, "src_reg 2, dst_reg 0");
            assert_eq!(insn[4..], btf_id.to_le_bytes());
        }
        // Every other byte of the file is as it was.
        let changed: Vec<usize> = (0..object.len())
            .filter(|&i| object[i] != linked[i])
            .collect();
        assert!(
            changed.iter().all(|i| placeholders
                .iter()
                .any(|at| (*at..*at + INSN_LEN).contains(i))),
            "only placeholder calls may change"
        );
        assert!(
            instructions(&linked)
                .iter()
                .all(|(_, insn)| !is_helper_call(insn, kfunc::RDONLY_CAST)),
            "no placeholder is left"
        );
    }

    #[test]
    fn an_object_without_the_placeholder_is_an_error() {
        let object = crate::probe::object();
        let err = link(object, 0x7fff_0000, 1).expect_err("nothing calls that helper");
        assert!(matches!(
            err,
            KfuncError::NotCalled {
                placeholder: 0x7fff_0000
            }
        ));
        assert!(matches!(
            link(b"not an ELF file", kfunc::RDONLY_CAST, 1),
            Err(KfuncError::Elf(_))
        ));
    }

    #[test]
    fn helper_calls_are_told_from_other_instructions() {
        let call = |regs: u8, off: [u8; 2], imm: i32| {
            let mut insn = [CALL, regs, off[0], off[1], 0, 0, 0, 0];
            insn[4..].copy_from_slice(&imm.to_le_bytes());
            insn
        };
        assert!(is_helper_call(&call(0, [0, 0], 7), 7));
        assert!(!is_helper_call(&call(0, [0, 0], 8), 7), "another helper");
        assert!(
            !is_helper_call(&call(0x10, [0, 0], 7), 7),
            "a BPF-to-BPF call"
        );
        assert!(!is_helper_call(&call(0, [1, 0], 7), 7), "an offset");
        let mut not_call = call(0, [0, 0], 7);
        not_call[0] = 0xb7; // mov r0, imm
        assert!(!is_helper_call(&not_call, 7));
    }
}
