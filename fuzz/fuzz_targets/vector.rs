#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wayside_data::fuzzing::vector(data));
