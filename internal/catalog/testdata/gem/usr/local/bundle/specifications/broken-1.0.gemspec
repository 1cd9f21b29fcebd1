Gem::Specification.new do |s|
  s.name = "broken"
  s.version = Broken::VERSION
end
