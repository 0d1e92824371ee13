//! What an AgentX master sends, as hostile bytes: every PDU the decoder
//! takes must encode to bytes that decode to the same PDU, and the same
//! stream fed to a registered session (in pieces) and answered from a VM
//! list must neither panic nor answer with an unreadable PDU.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmd::agentx::mib::{Hypervisor, MibView};
use vmd::agentx::pdu::{decode, Header, Payload, Pdu, FLAG_NON_DEFAULT_CONTEXT};
use vmd::agentx::session::Session;
use vmm_sys::Wire;

/// The master's answer to the session's request `packet_id`.
fn response(packet_id: u32) -> Vec<u8> {
    Pdu {
        header: Header {
            flags: 0,
            session_id: 1,
            transaction_id: 0,
            packet_id,
        },
        context: None,
        payload: Payload::Response {
            sys_uptime: 0,
            error: 0,
            index: 0,
            varbinds: Vec::new(),
        },
    }
    .encode()
}

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let mut rest = stream;
    while let Ok(Some((pdu, used))) = decode(rest) {
        assert!(used >= 20 && used <= rest.len() && used % 4 == 0);
        let again = decode(&pdu.encode())
            .expect("re-encoded PDU")
            .expect("complete");
        let mut want = pdu.clone();
        want.header.flags &= !FLAG_NON_DEFAULT_CONTEXT;
        if want.context.is_some() {
            want.header.flags |= FLAG_NON_DEFAULT_CONTEXT;
        }
        assert_eq!(again.0, want);
        rest = &rest[used..];
    }

    // The session: opened (packet 1) and registered (packet 2) as the
    // master would, then the stream.
    let (mut session, _open) = Session::new(None);
    let mut out = Vec::new();
    session.receive(&response(1), &mut out).expect("open");
    out.clear();
    session.receive(&response(2), &mut out).expect("register");
    out.clear();
    let mut vm = vm::abi::VmopInfoResult::zeroed();
    vm.vir_info.vir_id = 1;
    vm.vir_info.vir_ncpus = 1;
    vm.vir_state = 1;
    let view = MibView::new(
        &Hypervisor {
            software: "OpenBSD VMM".into(),
            version: "7.8".into(),
        },
        &[vm],
    );
    for piece in stream.chunks(1 + usize::from(chunk)) {
        if session.receive(piece, &mut out).is_err() {
            break;
        }
    }
    session.answer_waiting(&view, &mut out);
    let mut answers = &out[..];
    while !answers.is_empty() {
        let (pdu, used) = decode(answers).expect("our answer").expect("complete");
        assert!(matches!(pdu.payload, Payload::Response { .. }));
        answers = &answers[used..];
    }
});
