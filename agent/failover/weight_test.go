package failover

import "github.com/headnat/headnat/agent/rendezvous"

// weight is the table's rendezvous weight of an instance, as outranks compares it.
func weight(tableID, instanceID string) uint64 { return rendezvous.Weight(tableID, instanceID) }
