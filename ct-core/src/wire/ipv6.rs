//! STUB
use super::IpPacket;
use crate::invalid::InvalidReason;
pub(super) fn parse(_b: &[u8], _quoted: bool) -> Result<IpPacket<'_>, InvalidReason> {
    todo!()
}
