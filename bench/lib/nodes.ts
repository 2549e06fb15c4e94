// One long-lived client per node URL, for polling each node's own `status` cheaply (no dial per
// poll). A client redials by itself after its node restarted.

import { NexusClient } from '../../src/client/client.js';
import type { NodeStatus, Replies } from '../../src/transport/protocol.js';

export class NodeClients {
  private readonly clients: NexusClient[];

  constructor(
    readonly urls: string[],
    readonly timeoutMs = 5000,
  ) {
    this.clients = urls.map((u) => new NexusClient({ nodes: [u], timeoutMs }));
  }

  /** `status` as node i answers it. */
  status(i: number): Promise<Replies['status']> {
    return this.clients[i]!.status();
  }

  /** Node i's figures about itself (exact, not a peer's last report). */
  async self(i: number, id: string): Promise<NodeStatus> {
    const s = await this.status(i);
    const me = s.nodes.find((n) => n.id === id);
    if (!me) throw new Error(`node ${id} is missing from its own status`);
    return me;
  }

  close(): void {
    for (const c of this.clients) c.close();
  }
}
