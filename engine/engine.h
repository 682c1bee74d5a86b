/* engine.h - the engine object (internal). */
#ifndef IPM_ENGINE_H
#define IPM_ENGINE_H

#include <pthread.h>
#include "ipmirror.h"
#include "config.h"
#include "wire.h"

struct ipm_engine {
	ipm_config *cfg;                    /* private copy */
	char node[IPM_NAME_MAX];
	const struct ipm_node_cfg *self;
	const struct ipm_node_cfg *peer;    /* NULL with a one-node config */
	struct ipm_lun **luns;
	size_t n_luns;
	bool started;
	/* mirroring, present when the config mirrors LUNs between two nodes */
	struct auth_secret *secret;
	struct replicator *rep;             /* we are primary for some LUNs */
	struct receiver *rcv;               /* the peer is primary for some */
	struct heartbeat *hb;               /* UDP heartbeat with the peer */
};

#endif
