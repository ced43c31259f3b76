package gateway

import (
	"math"
	"math/rand/v2"
	"time"
)

// Telemetry is one message the agent publishes on gw/<serial>/telemetry:
// readings of a simulated centrifugal pump.
type Telemetry struct {
	// Seq counts the agent's messages from 1; it restarts with the agent.
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	// FlowM3H is the flow, 20 to 60 m³/h.
	FlowM3H float64 `json:"flow_m3h"`
	// PressureBar is the discharge pressure, 2 to 6 bar: it falls as the
	// flow rises, along the pump's curve.
	PressureBar float64 `json:"pressure_bar"`
	// PowerKW is the shaft power, 3 to 11 kW, rising with the flow.
	PowerKW float64 `json:"power_kw"`
	// TemperatureC is the motor temperature, 40 to 70 °C, following the
	// load with a lag of minutes.
	TemperatureC float64 `json:"temperature_c"`
	// RunningHours only increases.
	RunningHours float64 `json:"running_hours"`
}

// pump simulates the readings: a demand between 0 and 1 wanders smoothly
// (a slow daily-like swing plus a mean-reverting random walk), and the
// readings follow it.
type pump struct {
	rng    *rand.Rand
	phase  float64 // of the slow swing, radians
	walk   float64 // mean-reverting noise, around 0
	temp   float64
	hours  float64
	demand float64
}

func newPump(seed uint64) *pump {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	p := &pump{rng: rng, phase: rng.Float64() * 2 * math.Pi, hours: 500 + rng.Float64()*20000}
	p.demand = p.level()
	p.temp = 40 + 30*p.demand
	return p
}

func (p *pump) level() float64 {
	return min(1, max(0, 0.5+0.3*math.Sin(p.phase)+p.walk))
}

// step advances the pump by dt and returns its readings.
func (p *pump) step(dt time.Duration, now time.Time, seq uint64) Telemetry {
	s := dt.Seconds()
	p.phase += 2 * math.Pi * s / 3600 // one swing an hour
	// Ornstein-Uhlenbeck: pulled back to 0 over ~5 minutes.
	p.walk += -p.walk*min(1, s/300) + 0.005*math.Sqrt(s)*p.rng.NormFloat64()
	p.walk = min(0.2, max(-0.2, p.walk))
	p.demand = p.level()
	d := p.demand
	// The motor warms towards its load's temperature over ~10 minutes.
	p.temp += (40 + 30*d - p.temp) * min(1, s/600)
	p.hours += dt.Hours()
	noise := func(scale float64) float64 { return scale * p.rng.NormFloat64() }
	return Telemetry{
		Seq:          seq,
		Time:         now.UTC(),
		FlowM3H:      round2(clamp(20+40*d+noise(0.2), 20, 60)),
		PressureBar:  round2(clamp(6-4*d*d+noise(0.02), 2, 6)),
		PowerKW:      round2(clamp(3+8*(0.35*d+0.65*d*d)+noise(0.05), 3, 11)),
		TemperatureC: round2(clamp(p.temp+noise(0.05), 40, 70)),
		RunningHours: math.Round(p.hours*1000) / 1000,
	}
}

func clamp(v, lo, hi float64) float64 { return min(hi, max(lo, v)) }
func round2(v float64) float64        { return math.Round(v*100) / 100 }
