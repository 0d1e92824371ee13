//! Every wire struct decoded from arbitrary bytes: decoding must never
//! panic, must reject every wrong length, and must be stable (decode,
//! encode, decode gives the same value; padding is the only thing lost).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vm::abi::*;
use vmm_sys::{VmExit, VmInfoResult, Wire};

fn check<T: Wire + PartialEq + std::fmt::Debug>(data: &[u8]) {
    match T::from_bytes(data) {
        Ok(v) => {
            assert_eq!(data.len(), T::SIZE);
            let again = T::from_bytes(&v.to_bytes()).expect("own bytes rejected");
            assert_eq!(again, v);
        }
        Err(e) => assert_ne!(e.got, T::SIZE),
    }
    // The same input cut or padded to the exact size must always decode.
    let mut exact = data.to_vec();
    exact.resize(T::SIZE, 0);
    let v = T::from_bytes(&exact).expect("exact size rejected");
    assert_eq!(T::from_bytes(&v.to_bytes()).unwrap(), v);
}

fuzz_target!(|data: &[u8]| {
    check::<ViodevMsg>(data);
    check::<VmopResult>(data);
    check::<VmopId>(data);
    check::<VmopOwner>(data);
    check::<VmopInfoResult>(data);
    check::<VmopCreateParams>(data);
    check::<LocalPrefix>(data);
    check::<VmdVm>(data);
    check::<VirtioDev>(data);
    check::<VmInfoResult>(data);
    check::<VmExit>(data);
    if let Ok(dev) = VirtioDev::from_bytes(data) {
        // Every union view of hostile bytes decodes.
        let _ = (dev.dev.vioblk(), dev.dev.vionet(), dev.dev.vmmci(), dev.dev.vioscsi());
    }
});
