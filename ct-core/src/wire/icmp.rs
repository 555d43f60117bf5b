//! STUB
use crate::invalid::InvalidReason;
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct IcmpMsg<'a> {
    pub ty: u8,
    pub code: u8,
    pub checksum: u16,
    pub ident: u16,
    pub rest_of_header: [u8; 4],
    pub body: &'a [u8],
}
impl<'a> IcmpMsg<'a> {
    pub fn parse(_l4: &'a [u8]) -> Result<IcmpMsg<'a>, InvalidReason> {
        todo!()
    }
}
