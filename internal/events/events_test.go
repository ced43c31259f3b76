package events

import (
	"sync"
	"testing"
)

func TestTopicDeliversToEverySubscriberInOrder(t *testing.T) {
	var topic Topic[int]
	topic.Publish(0) // no subscribers: nothing happens
	var got []string
	topic.Subscribe(func(v int) { got = append(got, "a", string(rune('0'+v))) })
	topic.Subscribe(func(v int) { got = append(got, "b", string(rune('0'+v))) })
	topic.Publish(1)
	topic.Publish(2)
	want := []string{"a", "1", "b", "1", "a", "2", "b", "2"}
	if len(got) != len(want) {
		t.Fatalf("got %v; want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v; want %v", got, want)
		}
	}
}

func TestTopicConcurrentUse(t *testing.T) {
	var topic Topic[int]
	var mu sync.Mutex
	sum := 0
	topic.Subscribe(func(v int) { mu.Lock(); sum += v; mu.Unlock() })
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(2)
		go func() { defer wg.Done(); topic.Publish(1) }()
		go func() { defer wg.Done(); topic.Subscribe(func(int) {}); _ = i }()
	}
	wg.Wait()
	if sum != 50 {
		t.Errorf("sum of deliveries to the first subscriber = %d; want 50", sum)
	}
}
