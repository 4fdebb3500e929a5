//! The Dockerfile front end: [`parser`] turns text into a syntax tree with positions,
//! [`instructions`] types and validates each node and expands variables in it.
//!
//! The two steps are kept apart, as in BuildKit, because the syntax tree is what BuildKit's
//! conformance corpus pins down (its dump format) and because expansion depends on build-time
//! state (ARG and ENV values) that only the solver knows.

pub mod duration;
pub mod instructions;
pub mod parser;

pub use instructions::{
    expand_instruction, parse_instruction, parse_instructions, Instruction, InstructionError,
    InstructionKind,
};
pub use parser::{parse, Dockerfile, Heredoc, Node, ParseError};
