package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// stateVersion is the state file's format.
const stateVersion = 1

// State is what the agent keeps across restarts, in its state file (JSON).
type State struct {
	Version int `json:"version"`
	// AgentID is the agent the state belongs to: a state file is not
	// shared between agents (their cursors differ).
	AgentID string `json:"agentId"`
	// After is the highest sequenceId applied and reported: the agent
	// resumes its feed after it. Nil before the first object (the feed
	// then starts with the desired state).
	After *int64 `json:"after,omitempty"`
	// Stacks records, per stack id, the last object applied: an object the
	// broker hands over again (its desired state after a re-activation, a
	// target added again) is not applied twice.
	Stacks map[string]StackState `json:"stacks"`
}

// StackState is the last object applied for one stack.
type StackState struct {
	Name       string `json:"name"`
	SequenceID int64  `json:"sequenceId"`
	Deleted    bool   `json:"deleted,omitempty"` // that object was a deletion marker
}

// applied says whether the object seq of stack was applied already.
func (s *State) applied(stackID string, seq int64) bool {
	st, ok := s.Stacks[stackID]
	return ok && st.SequenceID >= seq
}

// record notes an object applied and reported.
func (s *State) record(stackID string, st StackState) {
	s.Stacks[stackID] = st
	if s.After == nil || st.SequenceID > *s.After {
		seq := st.SequenceID
		s.After = &seq
	}
}

// LoadState reads the state file at path; a file that does not exist yet
// is an empty state for agentID. A state of another agent is refused.
func LoadState(path, agentID string) (*State, error) {
	s := &State{Version: stateVersion, AgentID: agentID, Stacks: map[string]StackState{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the state file: %w", err)
	}
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("state file %s: %w (move it away to start from the desired state)", path, err)
	}
	if s.Version != stateVersion {
		return nil, fmt.Errorf("state file %s: version %d, this agent reads version %d", path, s.Version, stateVersion)
	}
	if s.AgentID != agentID {
		return nil, fmt.Errorf("state file %s belongs to agent %s, not to this key's agent %s: give each agent its own --state", path, s.AgentID, agentID)
	}
	if s.Stacks == nil {
		s.Stacks = map[string]StackState{}
	}
	return s, nil
}

// Save writes the state to path atomically: a temporary file in the same
// directory, synced, renamed over the old one, and the directory synced,
// so that a crash leaves the old state or the new one, never a mix.
func (s *State) Save(path string) (err error) {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing the state file: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
			err = fmt.Errorf("writing the state file %s: %w", path, err)
		}
	}()
	if _, err = f.Write(append(b, '\n')); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
