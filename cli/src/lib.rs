//! The commands of the `paved` binary, as a library so that end-to-end tests run the same
//! assembly (`up::start_platform`) the command does.

pub mod apply_cmd;
pub mod control_plane_cmd;
pub mod demo;
pub mod flow_agent_cmd;
pub mod gateway_cmd;
pub mod up;
