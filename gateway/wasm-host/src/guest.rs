//! Reading and writing a plugin's linear memory from host functions.
//!
//! Every pointer and length comes from the guest and is untrusted: each access is checked
//! against the memory's current size and fails with `InvalidMemoryAccess` instead of
//! touching anything outside it. Values returned to the guest are copied into memory the
//! guest allocates itself (`proxy_on_memory_allocate`), as the ABI requires: the SDK takes
//! ownership of them.

use wasmtime::Caller;

use crate::abi::{HostResult, Status};
use crate::state::HostState;

/// The guest's view, for the duration of one host function call.
pub(crate) type GuestCaller<'a> = Caller<'a, HostState>;

/// Converts an ABI `u32` argument (wasm passes it as `i32`) to an offset or length.
fn offset(raw: i32) -> usize {
    raw as u32 as usize
}

/// Copies `len` bytes at `ptr` out of guest memory.
pub(crate) fn read(caller: &GuestCaller<'_>, ptr: i32, len: i32) -> HostResult<Vec<u8>> {
    let memory = caller.data().memory.ok_or(Status::InternalFailure)?;
    let start = offset(ptr);
    let end = start
        .checked_add(offset(len))
        .ok_or(Status::InvalidMemoryAccess)?;
    memory
        .data(caller)
        .get(start..end)
        .map(<[u8]>::to_vec)
        .ok_or(Status::InvalidMemoryAccess)
}

/// Reads a UTF-8 string (names, keys, paths).
pub(crate) fn read_str(caller: &GuestCaller<'_>, ptr: i32, len: i32) -> HostResult<String> {
    String::from_utf8(read(caller, ptr, len)?).map_err(|_| Status::BadArgument)
}

/// Writes `bytes` at `ptr`.
pub(crate) fn write(caller: &mut GuestCaller<'_>, ptr: i32, bytes: &[u8]) -> HostResult {
    let memory = caller.data().memory.ok_or(Status::InternalFailure)?;
    let start = offset(ptr);
    let end = start
        .checked_add(bytes.len())
        .ok_or(Status::InvalidMemoryAccess)?;
    memory
        .data_mut(caller)
        .get_mut(start..end)
        .ok_or(Status::InvalidMemoryAccess)?
        .copy_from_slice(bytes);
    Ok(())
}

/// Writes a `u32` (also the guest's `usize` and pointers on wasm32).
pub(crate) fn write_u32(caller: &mut GuestCaller<'_>, ptr: i32, value: u32) -> HostResult {
    write(caller, ptr, &value.to_le_bytes())
}

/// Checks that a return slot of `size` bytes at `ptr` is inside memory, before any work.
pub(crate) fn check_slot(caller: &GuestCaller<'_>, ptr: i32, size: usize) -> HostResult {
    let memory = caller.data().memory.ok_or(Status::InternalFailure)?;
    let end = offset(ptr)
        .checked_add(size)
        .ok_or(Status::InvalidMemoryAccess)?;
    if end > memory.data_size(caller) {
        return Err(Status::InvalidMemoryAccess);
    }
    Ok(())
}

/// Hands `bytes` to the guest: allocates them in guest memory and writes the pointer and
/// size into the two return slots. Empty values are returned as a null pointer, which the
/// SDKs read as "empty" (maps) or "none" (buffers). A trap inside the guest's allocator is
/// the guest's failure and is propagated as such.
pub(crate) fn return_bytes(
    caller: &mut GuestCaller<'_>,
    bytes: &[u8],
    ptr_slot: i32,
    size_slot: i32,
) -> wasmtime::Result<HostResult> {
    if let Err(status) =
        check_slot(caller, ptr_slot, 4).and_then(|()| check_slot(caller, size_slot, 4))
    {
        return Ok(Err(status));
    }
    if bytes.is_empty() {
        return Ok(write_u32(caller, ptr_slot, 0).and_then(|()| write_u32(caller, size_slot, 0)));
    }
    let Ok(len) = i32::try_from(bytes.len()) else {
        return Ok(Err(Status::BadArgument));
    };
    let Some(alloc) = caller.data().alloc.clone() else {
        return Ok(Err(Status::InternalFailure));
    };
    let ptr = alloc.call(&mut *caller, len)?;
    if ptr == 0 {
        return Ok(Err(Status::InternalFailure));
    }
    Ok(write(caller, ptr, bytes)
        .and_then(|()| write_u32(caller, ptr_slot, ptr as u32))
        .and_then(|()| write_u32(caller, size_slot, len as u32)))
}

/// The `i32` a host function returns for a result.
pub(crate) fn status(result: HostResult) -> i32 {
    match result {
        Ok(()) => 0,
        Err(status) => status as i32,
    }
}
