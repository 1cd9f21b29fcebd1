# This is the gem's own gemspec, not an installed specification.
Gem::Specification.new do |s|
  s.name = "rake"
  s.version = Rake::VERSION
end
