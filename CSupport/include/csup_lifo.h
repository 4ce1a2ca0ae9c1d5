/*
 * Lock-free LIFO (Treiber stack) of nodes embedded in caller structs.
 * The head packs a 16-bit tag in the pointer's top bits, bumped on every
 * push and pop, so a pop that read a stale head fails its CAS (ABA-safe
 * for 65,536 interleavings). Nodes must stay allocated while the LIFO may
 * reference them.
 */
#ifndef CSUP_LIFO_H
#define CSUP_LIFO_H

#include <stdint.h>

typedef struct csup_lifo_node {
    struct csup_lifo_node *next;
    void *item;
} csup_lifo_node;

typedef struct csup_lifo {
    uint64_t head;   /* tagged pointer */
} csup_lifo;

void csup_lifo_init(csup_lifo *lifo);
void csup_lifo_push(csup_lifo *lifo, csup_lifo_node *node);
csup_lifo_node *csup_lifo_pop(csup_lifo *lifo);

#endif
