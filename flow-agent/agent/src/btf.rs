//! Finds kernel structure field offsets in the kernel's BTF (`/sys/kernel/btf/vmlinux`).
//!
//! Why not CO-RE: `bpf-linker` does not emit CO-RE relocations for Rust programs, so the
//! BPF side cannot say "the field named `bytes_acked`" and have the loader patch it. The
//! loader does the lookup instead, here, and passes plain byte offsets to the programs
//! through a map. aya's own BTF parser keeps its type accessors private, hence this
//! small reader: it walks the type section once and understands just enough (struct,
//! union, typedef and qualifier chains, integer sizes) to locate a member.

use std::collections::HashMap;

use paved_flow_common::{KernelOffsets, OFFSET_UNKNOWN, SockOffsets, TcpSockOffsets};

/// Where the running kernel publishes its BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

const MAGIC: u16 = 0xeb9f;
const HEADER_LEN: usize = 24;

// BTF kinds (include/uapi/linux/btf.h).
const KIND_INT: u8 = 1;
const KIND_PTR: u8 = 2;
const KIND_ARRAY: u8 = 3;
const KIND_STRUCT: u8 = 4;
const KIND_UNION: u8 = 5;
const KIND_ENUM: u8 = 6;
const KIND_FWD: u8 = 7;
const KIND_TYPEDEF: u8 = 8;
const KIND_VOLATILE: u8 = 9;
const KIND_CONST: u8 = 10;
const KIND_RESTRICT: u8 = 11;
const KIND_FUNC: u8 = 12;
const KIND_FUNC_PROTO: u8 = 13;
const KIND_VAR: u8 = 14;
const KIND_DATASEC: u8 = 15;
const KIND_FLOAT: u8 = 16;
const KIND_DECL_TAG: u8 = 17;
const KIND_TYPE_TAG: u8 = 18;
const KIND_ENUM64: u8 = 19;

/// Deepest chain of typedefs/qualifiers or nested anonymous members followed.
const MAX_DEPTH: usize = 32;

/// Why the BTF blob could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BtfError {
    /// The blob is shorter than a header, a section, or a type it declares.
    #[error("BTF data is truncated ({what})")]
    Truncated {
        /// What was being read.
        what: &'static str,
    },
    /// The magic number is wrong (or the blob is of the other byte order).
    #[error("not BTF data in native byte order (magic {magic:#06x})")]
    BadMagic {
        /// The magic found.
        magic: u16,
    },
    /// A kind this reader does not know, so the rest of the section cannot be walked.
    #[error("unknown BTF kind {kind} at type id {id}")]
    UnknownKind {
        /// The kind number.
        kind: u8,
        /// The type id where it appeared.
        id: u32,
    },
}

/// One type's header and where its kind-specific data sits in the type section.
#[derive(Clone, Copy, Debug)]
struct Type {
    name_off: u32,
    kind: u8,
    kind_flag: bool,
    vlen: u16,
    /// `size` for sized kinds, `type` for references.
    size_or_type: u32,
    /// Offset of the kind-specific data within the type section.
    data: usize,
}

/// A parsed BTF blob borrowing the raw bytes.
pub struct Btf<'a> {
    types: Vec<Type>,
    type_section: &'a [u8],
    strings: &'a [u8],
    structs_by_name: HashMap<&'a str, u32>,
}

fn u32_at(bytes: &[u8], at: usize, what: &'static str) -> Result<u32, BtfError> {
    bytes
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_ne_bytes)
        .ok_or(BtfError::Truncated { what })
}

impl<'a> Btf<'a> {
    /// Parses a raw BTF blob as found in `/sys/kernel/btf/vmlinux`.
    pub fn parse(raw: &'a [u8]) -> Result<Self, BtfError> {
        let header = raw
            .get(..HEADER_LEN)
            .ok_or(BtfError::Truncated { what: "header" })?;
        let magic = u16::from_ne_bytes([header[0], header[1]]);
        if magic != MAGIC {
            return Err(BtfError::BadMagic { magic });
        }
        let hdr_len = u32_at(header, 4, "header")? as usize;
        let type_off = u32_at(header, 8, "header")? as usize;
        let type_len = u32_at(header, 12, "header")? as usize;
        let str_off = u32_at(header, 16, "header")? as usize;
        let str_len = u32_at(header, 20, "header")? as usize;
        let body = raw
            .get(hdr_len..)
            .ok_or(BtfError::Truncated { what: "header" })?;
        let type_section = body
            .get(type_off..type_off.saturating_add(type_len))
            .ok_or(BtfError::Truncated {
                what: "type section",
            })?;
        let strings =
            body.get(str_off..str_off.saturating_add(str_len))
                .ok_or(BtfError::Truncated {
                    what: "string section",
                })?;

        let mut btf = Self {
            types: Vec::new(),
            type_section,
            strings,
            structs_by_name: HashMap::new(),
        };
        let mut at = 0;
        while at < type_section.len() {
            let id = btf.types.len() as u32 + 1;
            let info = u32_at(type_section, at + 4, "type header")?;
            let ty = Type {
                name_off: u32_at(type_section, at, "type header")?,
                kind: ((info >> 24) & 0x1f) as u8,
                kind_flag: info >> 31 == 1,
                vlen: (info & 0xffff) as u16,
                size_or_type: u32_at(type_section, at + 8, "type header")?,
                data: at + 12,
            };
            let vlen = usize::from(ty.vlen);
            let extra = match ty.kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_PTR | KIND_FWD | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT
                | KIND_FUNC | KIND_FLOAT | KIND_TYPE_TAG => 0,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => 12 * vlen,
                KIND_ENUM | KIND_FUNC_PROTO => 8 * vlen,
                kind => return Err(BtfError::UnknownKind { kind, id }),
            };
            at = ty.data + extra;
            if at > type_section.len() {
                return Err(BtfError::Truncated { what: "type data" });
            }
            if ty.kind == KIND_STRUCT
                && let Some(name) = btf.name(ty.name_off)
            {
                // The first definition wins; kernels have one `tcp_sock`.
                btf.structs_by_name.entry(name).or_insert(id);
            }
            btf.types.push(ty);
        }
        Ok(btf)
    }

    /// The string at `off` in the string section, `None` for the empty name or bad data.
    fn name(&self, off: u32) -> Option<&'a str> {
        let rest = self.strings.get(off as usize..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        let name = std::str::from_utf8(&rest[..end]).ok()?;
        (!name.is_empty()).then_some(name)
    }

    fn get(&self, id: u32) -> Option<&Type> {
        self.types.get((id as usize).checked_sub(1)?)
    }

    /// Follows typedefs and qualifiers to the underlying type id.
    fn resolve(&self, mut id: u32) -> Option<u32> {
        for _ in 0..MAX_DEPTH {
            let ty = self.get(id)?;
            match ty.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = ty.size_or_type;
                }
                _ => return Some(id),
            }
        }
        None
    }

    /// Size in bytes of a scalar or aggregate member type.
    fn size_of(&self, id: u32) -> Option<usize> {
        let ty = self.get(self.resolve(id)?)?;
        match ty.kind {
            KIND_INT | KIND_ENUM | KIND_ENUM64 | KIND_STRUCT | KIND_UNION | KIND_FLOAT => {
                Some(ty.size_or_type as usize)
            }
            KIND_PTR => Some(8),
            _ => None,
        }
    }

    /// Byte offset and size of member `name` of struct `struct_name`, looking through
    /// anonymous nested structs and unions. `None` if absent or a bitfield.
    pub fn member(&self, struct_name: &str, name: &str) -> Option<(usize, usize)> {
        let id = *self.structs_by_name.get(struct_name)?;
        self.find_member(id, name, 0, 0)
    }

    /// The id of the first type of `kind` named `name` (a linear scan: for the few
    /// lookups made at load).
    fn type_id(&self, kind: u8, name: &str) -> Option<u32> {
        let index = self
            .types
            .iter()
            .position(|ty| ty.kind == kind && self.name(ty.name_off) == Some(name))?;
        u32::try_from(index + 1).ok()
    }

    /// The id of function `name` (a `FUNC`, as kfuncs are), `None` if the kernel has none.
    pub fn function(&self, name: &str) -> Option<u32> {
        self.type_id(KIND_FUNC, name)
    }

    /// Whether enum `enum_name` has a value named `value`: how the kernel announces some
    /// verifier features (`enum bpf_features`).
    pub fn enum_has_value(&self, enum_name: &str, value: &str) -> bool {
        let Some(ty) = self
            .type_id(KIND_ENUM, enum_name)
            .and_then(|id| self.get(id))
        else {
            return false;
        };
        (0..usize::from(ty.vlen)).any(|i| {
            u32_at(self.type_section, ty.data + 8 * i, "enum value")
                .ok()
                .and_then(|name| self.name(name))
                == Some(value)
        })
    }

    fn find_member(
        &self,
        id: u32,
        name: &str,
        base: usize,
        depth: usize,
    ) -> Option<(usize, usize)> {
        if depth > MAX_DEPTH {
            return None;
        }
        let ty = self.get(self.resolve(id)?)?;
        if ty.kind != KIND_STRUCT && ty.kind != KIND_UNION {
            return None;
        }
        for i in 0..usize::from(ty.vlen) {
            let at = ty.data + 12 * i;
            let member_name = u32_at(self.type_section, at, "member").ok()?;
            let member_type = u32_at(self.type_section, at + 4, "member").ok()?;
            let raw_offset = u32_at(self.type_section, at + 8, "member").ok()?;
            // With kind_flag set the top byte is the bitfield size, the rest the bit offset.
            let (bit_offset, bitfield_size) = if ty.kind_flag {
                (raw_offset & 0x00ff_ffff, raw_offset >> 24)
            } else {
                (raw_offset, 0)
            };
            let offset = base + bit_offset as usize / 8;
            match self.name(member_name) {
                Some(n) if n == name => {
                    if bitfield_size != 0 || bit_offset % 8 != 0 {
                        return None;
                    }
                    return Some((offset, self.size_of(member_type)?));
                }
                Some(_) => {}
                None => {
                    if let Some(found) = self.find_member(member_type, name, offset, depth + 1) {
                        return Some(found);
                    }
                }
            }
        }
        None
    }
}

/// The offsets found, plus the fields that could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedOffsets {
    /// Offsets to hand to the programs (`OFFSET_UNKNOWN` where missing).
    pub offsets: KernelOffsets,
    /// `struct.field` names absent from the kernel, or not of the expected size.
    pub missing: Vec<&'static str>,
}

/// Looks up every field the programs read, checking each one's size.
pub fn kernel_offsets(btf: &Btf<'_>) -> ResolvedOffsets {
    let mut missing = Vec::new();
    let mut find = |qualified: &'static str, size: usize| {
        let found = qualified
            .split_once('.')
            .and_then(|(strukt, field)| btf.member(strukt, field));
        match found {
            Some((offset, found)) if found == size => {
                u32::try_from(offset).unwrap_or(OFFSET_UNKNOWN)
            }
            _ => {
                missing.push(qualified);
                OFFSET_UNKNOWN
            }
        }
    };
    let tcp_sock = TcpSockOffsets {
        bytes_acked: find("tcp_sock.bytes_acked", 8),
        bytes_received: find("tcp_sock.bytes_received", 8),
        segs_in: find("tcp_sock.segs_in", 4),
        segs_out: find("tcp_sock.segs_out", 4),
        total_retrans: find("tcp_sock.total_retrans", 4),
        srtt_us: find("tcp_sock.srtt_us", 4),
        write_seq: find("tcp_sock.write_seq", 4),
        snd_una: find("tcp_sock.snd_una", 4),
    };
    let sock = SockOffsets {
        daddr: find("sock_common.skc_daddr", 4),
        rcv_saddr: find("sock_common.skc_rcv_saddr", 4),
        dport: find("sock_common.skc_dport", 2),
        num: find("sock_common.skc_num", 2),
        family: find("sock_common.skc_family", 2),
        v6_daddr: find("sock_common.skc_v6_daddr", 16),
        v6_rcv_saddr: find("sock_common.skc_v6_rcv_saddr", 16),
        cookie: find("sock_common.skc_cookie", 8),
    };
    ResolvedOffsets {
        offsets: KernelOffsets { tcp_sock, sock },
        missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a BTF blob: `u64` typedef, `u32` int, an anonymous struct nested in
    /// `struct tcp_sock`, a bitfield member, a function and an enum.
    fn synthetic_btf() -> Vec<u8> {
        let strings = b"\0tcp_sock\0u64\0unsigned long long\0unsigned int\0bytes_acked\0segs_in\0srtt_us\0flags\0bytes_received\0bpf_rdonly_cast\0bpf_features\0BPF_FEAT_STREAMS\0";
        let s = |name: &str| -> u32 {
            let needle = format!("\0{name}\0");
            let pos = strings
                .windows(needle.len())
                .position(|w| w == needle.as_bytes())
                .expect("test string present");
            pos as u32 + 1
        };
        let mut types: Vec<u32> = Vec::new();
        let info = |kind: u32, vlen: u32, kind_flag: bool| {
            (u32::from(kind_flag) << 31) | (kind << 24) | vlen
        };
        // 1: unsigned long long (INT, 8 bytes)
        types.extend([s("unsigned long long"), info(1, 0, false), 8, 64]);
        // 2: typedef u64 -> 1
        types.extend([s("u64"), info(8, 0, false), 1]);
        // 3: unsigned int (INT, 4 bytes)
        types.extend([s("unsigned int"), info(1, 0, false), 4, 32]);
        // 4: anonymous struct { u32 segs_in; u32 srtt_us; } of 8 bytes
        types.extend([0, info(4, 2, false), 8]);
        types.extend([s("segs_in"), 3, 0]);
        types.extend([s("srtt_us"), 3, 32]);
        // 5: struct tcp_sock { u32 flags:3 (bitfield); u64 bytes_acked @8; anon @16; u64 bytes_received:64 @24 }
        types.extend([s("tcp_sock"), info(4, 4, true), 32]);
        types.extend([s("flags"), 3, (3 << 24)]);
        types.extend([s("bytes_acked"), 2, 64]);
        types.extend([0, 4, 128]);
        types.extend([s("bytes_received"), 2, 192]);
        // 6: FUNC bpf_rdonly_cast (its prototype is not looked at)
        types.extend([s("bpf_rdonly_cast"), info(12, 0, false), 3]);
        // 7: enum bpf_features { BPF_FEAT_STREAMS = 1 } of 4 bytes
        types.extend([s("bpf_features"), info(6, 1, false), 4]);
        types.extend([s("BPF_FEAT_STREAMS"), 1]);

        let type_bytes: Vec<u8> = types.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let mut blob = Vec::new();
        blob.extend(MAGIC.to_ne_bytes());
        blob.extend([1u8, 0]);
        blob.extend((HEADER_LEN as u32).to_ne_bytes());
        blob.extend(0u32.to_ne_bytes());
        blob.extend((type_bytes.len() as u32).to_ne_bytes());
        blob.extend((type_bytes.len() as u32).to_ne_bytes());
        blob.extend((strings.len() as u32).to_ne_bytes());
        blob.extend(type_bytes);
        blob.extend(strings);
        blob
    }

    #[test]
    fn members_are_found_through_typedefs_and_anonymous_structs() {
        let raw = synthetic_btf();
        let btf = Btf::parse(&raw).expect("synthetic BTF parses");
        assert_eq!(btf.member("tcp_sock", "bytes_acked"), Some((8, 8)));
        assert_eq!(btf.member("tcp_sock", "segs_in"), Some((16, 4)));
        assert_eq!(btf.member("tcp_sock", "srtt_us"), Some((20, 4)));
        assert_eq!(btf.member("tcp_sock", "nope"), None);
        assert_eq!(btf.member("udp_sock", "segs_in"), None);
    }

    #[test]
    fn functions_and_enum_values_are_found_by_name() {
        let raw = synthetic_btf();
        let btf = Btf::parse(&raw).expect("synthetic BTF parses");
        assert_eq!(btf.function("bpf_rdonly_cast"), Some(6));
        assert_eq!(btf.function("tcp_sock"), None, "a struct is not a function");
        assert!(btf.enum_has_value("bpf_features", "BPF_FEAT_STREAMS"));
        assert!(!btf.enum_has_value("bpf_features", "BPF_FEAT_RDONLY_CAST_TO_VOID"));
        assert!(!btf.enum_has_value("bpf_map_type", "BPF_FEAT_STREAMS"));
    }

    #[test]
    fn bitfields_and_absent_fields_are_reported_missing() {
        let raw = synthetic_btf();
        let btf = Btf::parse(&raw).expect("synthetic BTF parses");
        assert_eq!(btf.member("tcp_sock", "flags"), None);
        let resolved = kernel_offsets(&btf);
        let tcp = resolved.offsets.tcp_sock;
        assert_eq!(tcp.bytes_acked, 8);
        assert_eq!(tcp.bytes_received, 24);
        assert_eq!(tcp.srtt_us, 20);
        assert_eq!(tcp.segs_out, OFFSET_UNKNOWN);
        assert_eq!(
            &resolved.missing[..4],
            &[
                "tcp_sock.segs_out",
                "tcp_sock.total_retrans",
                "tcp_sock.write_seq",
                "tcp_sock.snd_una"
            ]
        );
        assert_eq!(resolved.offsets.sock, SockOffsets::UNKNOWN);
        assert_eq!(
            resolved.missing.len(),
            4 + 8,
            "every socket field is missing too"
        );
    }

    #[test]
    fn truncated_or_foreign_data_is_an_error_not_a_panic() {
        let raw = synthetic_btf();
        for len in [0, 3, HEADER_LEN, raw.len() - 1] {
            assert!(Btf::parse(&raw[..len]).is_err(), "length {len} must fail");
        }
        let mut swapped = raw.clone();
        swapped.swap(0, 1);
        assert!(matches!(
            Btf::parse(&swapped),
            Err(BtfError::BadMagic { .. })
        ));
    }

    #[test]
    fn running_kernel_has_every_field_the_programs_read() {
        let Ok(raw) = std::fs::read(VMLINUX_BTF) else {
            eprintln!("skipping: {VMLINUX_BTF} is not readable on this machine");
            return;
        };
        let btf = Btf::parse(&raw).expect("kernel BTF parses");
        let resolved = kernel_offsets(&btf);
        assert!(
            resolved.missing.is_empty(),
            "missing: {:?}",
            resolved.missing
        );
    }
}
