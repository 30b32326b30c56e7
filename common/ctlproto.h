/*
 * common/ctlproto.h - what the data plane and the control plane agree on for the requests the
 * DP forwards to the control socket (POST /register, GET /health_generate).
 */
#ifndef FD_COMMON_CTLPROTO_H
#define FD_COMMON_CTLPROTO_H

/* The client address the data plane attaches to what it forwards to the control socket (where
 * only our own processes can connect); any copy a client sent is removed first. */
#define FD_CLIENT_ADDR_HEADER "x-fd-client-addr"

/* Largest body the control socket takes; the DP answers 413 itself beyond it. */
#define FD_CTL_MAX_BODY (1u << 20)

#endif
