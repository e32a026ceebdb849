//! `edxml::import` on arbitrary bytes (issue 8: hostile XML). Whatever it accepts must come back
//! unchanged through `export` → `import` (the `unmapped` entries compared in path order); anything
//! else (a panic, a refused or different re-import) is a finding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lienthong_edxml as edxml;

fuzz_target!(|data: &[u8]| {
    let Ok(first) = edxml::import(data) else {
        return;
    };
    let written = edxml::export(&first);
    match edxml::import(written.as_bytes()) {
        Ok(again) => {
            let (first, again) = (in_path_order(first), in_path_order(again));
            assert!(
                again == first,
                "export then import changed the package\nfirst: {first:?}\nagain: {again:?}\n{written}"
            )
        }
        Err(e) => panic!("the export of an accepted package is refused: {e}\n{written}"),
    }
});

/// The order of `unmapped` entries is not kept (docs/edxml.md): an element without a field is
/// written back at the end of its parent. Their paths, indices included, and values are.
fn in_path_order(mut imported: edxml::Imported) -> edxml::Imported {
    match &mut imported {
        edxml::Imported::Document(d) => d.unmapped.sort(),
        edxml::Imported::Status(s) => s.unmapped.sort(),
    }
    imported
}
